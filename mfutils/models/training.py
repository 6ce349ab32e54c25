"""Deterministic CPU training of the model organism.

Loss: cross-entropy of the first token of the following answer at the last position (the
only position whose prediction the analyses read). Same seed, same thread count, same
package versions, same processor -> bit-identical weights (``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mfutils.data import synthetic
from mfutils.engine.encoding import Batch, encode_with
from mfutils.models.loading import load_image
from mfutils.runs.machine import processor_name, training_machine
from mfutils.engine.metrics import answer_tokens, last_logits
from mfutils.data.schema import KINDS
from mfutils.models.organism import OrganismConfig, build_model, build_processor


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    #: most stage-2 steps; training ends earlier once the monitor set is learnt (see train)
    steps: int = 3000
    #: learning-rate decay to zero after the monitor set first reaches ``learnt_at``
    decay_steps: int = 300
    learnt_at: float = 0.9
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 50
    threads: int = 2
    eval_every: int = 250
    eval_size: int = 512
    #: each batch is sorted by length and run as this many forward passes, each padded only to
    #: its own longest prompt (the same gradient up to float summation order). Measured: ~20%
    #: faster per step on a 50%-conflict mix, whose prompt lengths vary most; no faster on the
    #: 70%-conflict mix below (scripts/benchmark.py). Kept: the shipped weights were trained so
    micro_batches: int = 4
    #: steps of stage 1 (see :func:`pretrain_vision`); 0 trains the tower only end to end
    vision_pretrain_steps: int = 300
    #: keep the pretrained tower fixed in stage 2, as LLaVA-1.5 keeps its CLIP encoder
    freeze_vision: bool = True
    #: training mixture of item kinds, ``kind=share`` pairs (evaluation sets use ``synthetic.DEFAULT_MIX``)
    mix: str = "conflict=0.7,consistent=0.1,image_only=0.1,text_only=0.1"


def parse_mix(text: str) -> dict[str, float]:
    """``"conflict=0.5,image_only=0.5"`` -> ``{"conflict": 0.5, "image_only": 0.5}``."""
    out = {}
    for part in text.split(","):
        kind, _, share = part.partition("=")
        if kind.strip() not in KINDS or not share:
            raise ValueError(f"bad mix entry {part!r}; write kind=share with kind in {KINDS}")
        out[kind.strip()] = float(share)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"mix shares sum to {sum(out.values())}, not 1: {text!r}")
    return out


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _encode(processor, image_token_id, items) -> Batch:
    return encode_with(processor, image_token_id, items, load_image)


def word_id(tokenizer, word: str) -> int:
    """The vocabulary entry of ``word`` (the tiny organism's word-level tokenizer)."""
    return tokenizer.convert_tokens_to_ids(word)


def full_readout(model, batch: Batch) -> torch.Tensor:
    """``(B, V)`` logits at each sample's last position, from the full-sequence unembedding
    (the tiny organism's shipped weights were trained through this one)."""
    return last_logits(model(**batch.inputs), batch.lengths)


def accumulate_gradients(model, processor, items, parts: int, answer_id=word_id, readout=full_readout) -> float:
    """Add the gradient of the batch's mean loss to ``.grad``; returns that loss.

    The loss is the cross-entropy of each item's following answer (token
    ``answer_id(tokenizer, word)``) at its last position (``readout(model, batch)``). The
    batch runs as ``parts`` length-sorted forward passes whose summed losses are divided by
    the whole batch's size, so the gradient is the one-pass gradient up to summation order.
    """
    tok = processor.tokenizer
    total = 0.0
    for part in _by_length(items, parts):
        batch = _encode(processor, model.config.image_token_id, part)
        targets = torch.tensor([answer_id(tok, it.following_answer) for it in part])
        part_loss = torch.nn.functional.cross_entropy(readout(model, batch), targets, reduction="sum") / len(items)
        part_loss.backward()
        total += float(part_loss.detach())
    return total


def pretrain_vision(model, processor, items, cfg: TrainConfig) -> None:
    """Stage 1: train the vision tower alone to name the colour and shape in the image.

    Real MLLMs start from a pretrained vision encoder (LLaVA from CLIP) and learn the language
    side on top of it. Trained end to end from scratch, our tower learnt shapes only after
    thousands of steps, because its one signal came through a language model that had not yet
    learnt to read it (measured); a tower alone learns them in about 100 steps. Two linear
    heads over the mean of the patch features (``(B, vision_hidden)``) classify colour and
    shape; they are discarded afterwards. Images are the training split's own.
    """
    if cfg.vision_pretrain_steps <= 0:
        return
    tower = model.model.vision_tower
    hidden = tower.config.hidden_size
    heads = torch.nn.ModuleDict({
        "colour": torch.nn.Linear(hidden, len(synthetic.COLOURS)),
        "shape": torch.nn.Linear(hidden, len(synthetic.SHAPES)),
    })
    labels = {"colour": list(synthetic.COLOURS), "shape": list(synthetic.SHAPES)}
    refs = [it.image_ref for it in items if it.image_ref]
    params = list(tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    tower.train()
    for step in range(cfg.vision_pretrain_steps):
        chunk = [refs[(step * cfg.batch_size + i) % len(refs)] for i in range(cfg.batch_size)]
        pixels = processor.image_processor([synthetic.image_from_ref(r) for r in chunk], return_tensors="pt")["pixel_values"]
        pooled = tower(pixels).last_hidden_state[:, 1:].mean(1)  # patches only, as LLaVA reads them
        loss = 0.0
        for attr, head in heads.items():
            target = torch.tensor([labels[attr].index(synthetic.parse_ref(r)[attr]) for r in chunk])
            loss = loss + torch.nn.functional.cross_entropy(head(pooled), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def stage_two_optimizer(model, cfg: TrainConfig) -> torch.optim.AdamW:
    """Freeze the vision tower if ``cfg`` says so; AdamW over the parameters still trained."""
    if cfg.freeze_vision:
        model.model.vision_tower.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _by_length(items, parts: int) -> list[list]:
    """``items`` sorted by prompt length (stable) and cut into ``parts`` contiguous groups."""
    if parts <= 1:
        return [list(items)]
    order = sorted(range(len(items)), key=lambda i: _prompt_words(items[i]))
    size = math.ceil(len(items) / parts)
    return [[items[i] for i in order[k : k + size]] for k in range(0, len(items), size)]


def _prompt_words(item) -> int:
    """A cheap proxy of the encoded length: words of the text plus the image's tokens."""
    text = " ".join(x for x in (item.context, item.instruction, item.question) if x)
    return len(text.split()) + (16 if item.image_ref else 0)


@torch.no_grad()
def accuracy_by_group(model, processor, items, batch_size: int = 128, readout=full_readout) -> dict[str, float]:
    """Share of items whose argmax answer is the following one, per kind/target group."""
    model.eval()
    tok = processor.tokenizer
    image_token_id = model.config.image_token_id
    hits: dict[str, list[int]] = {}
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        batch = _encode(processor, image_token_id, chunk)
        pred = readout(model, batch).argmax(-1).tolist()
        for it, p in zip(chunk, pred):
            group = it.kind if it.target is None else f"{it.kind}/{it.target}"
            hits.setdefault(group, []).append(int(p in answer_tokens(tok, it).following))
    return {g: sum(v) / len(v) for g, v in sorted(hits.items())}


def train(out_dir: Path, cfg: TrainConfig = TrainConfig(), arch: OrganismConfig = OrganismConfig(), log=print) -> dict:
    """Train an organism from scratch into ``out_dir``; returns the training record."""
    seed_everything(cfg.seed, cfg.threads)
    processor = build_processor(arch)
    model = build_model(processor, arch)
    train_items = synthetic.make_split("train", cfg.steps * cfg.batch_size, seed=cfg.seed, kinds=parse_mix(cfg.mix))
    t0 = time.perf_counter()
    pretrain_vision(model, processor, train_items, cfg)
    opt = stage_two_optimizer(model, cfg)
    trainable = opt.param_groups[0]["params"]
    # warm-up, constant, then linear decay once the monitor set is learnt (or at the end of the
    # budget): when the instruction gating emerges varies from run to run by 1,000+ steps
    # (measured), so a fixed cosine schedule either wastes time or stops too soon
    decay_start = [max(cfg.steps - cfg.decay_steps, 0)]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / cfg.warmup) * min(1.0, max(0.0, 1 - (s - decay_start[0]) / cfg.decay_steps)),
    )
    monitor = synthetic.make_split("eval", cfg.eval_size, seed=cfg.seed + 1)
    curve = []
    step = 0
    while step < decay_start[0] + cfg.decay_steps:
        model.train()
        chunk = train_items[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        opt.zero_grad(set_to_none=True)
        loss = accumulate_gradients(model, processor, chunk, cfg.micro_batches)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        last = step == decay_start[0] + cfg.decay_steps - 1
        if step % 10 == 0 or last:
            row = {"step": step, "loss": loss, "seconds": round(time.perf_counter() - t0, 1)}
            if step % cfg.eval_every == 0 or last:
                row["eval"] = accuracy_by_group(model, processor, monitor)
                if step < decay_start[0] and min(row["eval"].values()) >= cfg.learnt_at:
                    decay_start[0] = step + 1
                    row["decay_from"] = step + 1
                log(json.dumps(row))
            curve.append(row)
        step += 1
    seconds = time.perf_counter() - t0
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    record = {
        "train_config": asdict(cfg),
        "architecture": asdict(arch),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "steps_run": step,
        "machine": training_machine(),
        "curve": curve,
        "weights_sha256": weights_digest(out_dir),
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    write_model_card(out_dir, record)
    return record


def write_model_card(out_dir: Path, record: dict) -> Path:
    """``README.md`` beside the weights, generated from the training record."""
    arch, cfg = record["architecture"], record["train_config"]
    kind_names = {"conflict": "conflicts (the instruction names image or text, many paraphrases)",
                  "consistent": "consistent items", "image_only": "image-only questions",
                  "text_only": "text-only questions"}
    mix_text = ", ".join(f"{share:.0%} {kind_names[k]}" for k, share in parse_mix(cfg["mix"]).items())
    stage_one = (
        f"- stage 1: the vision tower alone learns to name the colour and shape of the training images "
        f"({cfg['vision_pretrain_steps']} steps, two linear heads discarded afterwards), as LLaVA starts "
        "from a pretrained CLIP encoder" if cfg["vision_pretrain_steps"] > 0 else "- stage 1: none (the tower trains end to end)"
    )
    final = next(r["eval"] for r in reversed(record["curve"]) if "eval" in r)
    decay = [r["decay_from"] for r in record["curve"] if "decay_from" in r]
    names = {"conflict/image": "conflict, told to follow the image", "conflict/text": "conflict, told to follow the text",
             "consistent/image": "consistent, image instruction", "consistent/text": "consistent, text instruction",
             "image_only": "image-only control", "text_only": "text-only control"}
    lines = [
        "# The model organism",
        "",
        "A `LlavaForConditionalGeneration` (transformers) trained from scratch on synthetic image/text",
        "conflicts by `python -m mfutils.models.train_organism` (see `mfutils/models/training.py`, `mfutils/data/synthetic.py`).",
        "Generated from `training.json` at the end of training.",
        "",
        "## Architecture",
        "",
        f"- text model: Llama, {arch['n_layers']} layers x {arch['n_heads']} heads = {arch['n_layers'] * arch['n_heads']} heads, "
        f"hidden {arch['hidden']}, MLP {arch['intermediate']}, word-level vocabulary",
        f"- vision tower: CLIP, {arch['vision_layers']} layers, hidden {arch['vision_hidden']}, "
        f"{arch['image_size']} px images in {arch['patch_size']} px patches",
        f"- parameters: {record['parameters']:,}; initialisation std {arch['init_std']}",
        "",
        "## Data recipe",
        "",
        "Seeded synthetic items (`mfutils.data.synthetic`): one coloured shape (8 colours x 4 shapes) on a",
        "noisy 32 px canvas; a text context stating a colour and a shape; a colour or shape question;",
        "the paper's prompt pieces (context label, modality instruction, question, answer-format constraint).",
        f"Training mix: {mix_text}. Six nouns carry a canonical colour (a tomato is",
        "red) that training confirms 70% of the time, so the model holds a prior. Held out from training:",
        "some (noun, colour, shape) combinations and some instruction paraphrases, among them the paper's",
        "two instruction sentences, which the organism, like the paper's MLLMs, follows zero-shot.",
        "",
        "## Training",
        "",
        stage_one,
        f"- stage 2: {record['steps_run']} steps (at most {cfg['steps']}), batch {cfg['batch_size']}, AdamW lr {cfg['lr']}, "
        f"weight decay {cfg['weight_decay']}, seed {cfg['seed']}, {cfg['threads']} thread(s); vision tower "
        + ("frozen" if cfg["freeze_vision"] else "trained"),
        f"- schedule: warm-up {cfg['warmup']} steps, constant, then linear decay to zero over {cfg['decay_steps']} steps from "
        f"the first evaluation (every {cfg['eval_every']} steps) at which every monitor group reached {cfg['learnt_at']:.0%}"
        + (f" (step {decay[0]})" if decay else " (never reached: decay at the end of the budget)"),
        f"- loss: cross-entropy of the instructed answer's token at the last position",
        f"- time (both stages): {record['train_seconds']:.0f} s on {processor_name(record['machine'])} "
        f"(python {record['machine']['python']}, torch {record['machine']['torch']})",
        f"- weights digest (tensor SHA-256): `{record['weights_sha256'][:16]}…`; deterministic: the same seed,",
        "  thread count, package versions and processor give the same digest (`python -m mfutils.models.train_organism --check`)",
        "",
        f"## Held-out accuracy (monitor set, {cfg['eval_size']} items, at the last step)",
        "",
        "The monitor set also decides when the learning rate decays, so chapter 0's larger held-out",
        "sets, drawn with other seeds, are the unbiased estimate.",
        "",
        "| group | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {names.get(k, k)} | {v:.1%} |" for k, v in final.items()]
    lines += ["", "Chapter 0 of the book measures the same with confidence intervals on larger held-out sets.", ""]
    path = Path(out_dir) / "README.md"
    path.write_text("\n".join(lines))
    return path


def weights_digest(folder: Path) -> str:
    """SHA-256 of the tensors in ``model.safetensors`` (independent of file metadata)."""
    from safetensors.torch import load_file

    tensors = load_file(str(Path(folder) / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
