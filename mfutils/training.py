"""Deterministic CPU training of the model organism.

Loss: cross-entropy of the first token of the following answer at the last position (the
only position whose prediction the analyses read). Same seed, same thread count, same
package versions -> bit-identical weights (``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import synthetic
from .encoding import Batch, encode_with
from .loading import load_image
from .metrics import answer_tokens, last_logits
from .organism import OrganismConfig, build_model, build_processor


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 4000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 50
    threads: int = 1
    eval_every: int = 500
    eval_size: int = 512


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _encode(processor, image_token_id, items) -> Batch:
    return encode_with(processor, image_token_id, items, load_image)


@torch.no_grad()
def accuracy_by_group(model, processor, items, batch_size: int = 128) -> dict[str, float]:
    """Share of items whose argmax answer is the following one, per kind/target group."""
    model.eval()
    tok = processor.tokenizer
    image_token_id = model.config.image_token_id
    hits: dict[str, list[int]] = {}
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        batch = _encode(processor, image_token_id, chunk)
        logits = last_logits(model(**batch.inputs), batch.lengths)
        pred = logits.argmax(-1).tolist()
        for it, p in zip(chunk, pred):
            group = it.kind if it.target is None else f"{it.kind}/{it.target}"
            hits.setdefault(group, []).append(int(p in answer_tokens(tok, it).following))
    return {g: sum(v) / len(v) for g, v in sorted(hits.items())}


def train(out_dir: Path, cfg: TrainConfig = TrainConfig(), arch: OrganismConfig = OrganismConfig(), log=print) -> dict:
    """Train an organism from scratch into ``out_dir``; returns the training record."""
    seed_everything(cfg.seed, cfg.threads)
    processor = build_processor(arch)
    model = build_model(processor, arch)
    tok = processor.tokenizer
    image_token_id = model.config.image_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)),
    )
    train_items = synthetic.make_split("train", cfg.steps * cfg.batch_size, seed=cfg.seed)
    monitor = synthetic.make_split("eval", cfg.eval_size, seed=cfg.seed + 1)
    curve = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        model.train()
        chunk = train_items[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        batch = _encode(processor, image_token_id, chunk)
        targets = torch.tensor([tok.convert_tokens_to_ids(it.following_answer) for it in chunk])
        logits = last_logits(model(**batch.inputs), batch.lengths)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            row = {"step": step, "loss": float(loss.detach()), "seconds": round(time.perf_counter() - t0, 1)}
            if step % cfg.eval_every == 0 or step == cfg.steps - 1:
                row["eval"] = accuracy_by_group(model, processor, monitor)
                log(json.dumps(row))
            curve.append(row)
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
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine()},
        "curve": curve,
        "weights_sha256": weights_digest(out_dir),
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    write_model_card(out_dir, record)
    return record


def write_model_card(out_dir: Path, record: dict) -> Path:
    """``README.md`` beside the weights, generated from the training record."""
    arch, cfg = record["architecture"], record["train_config"]
    final = next(r["eval"] for r in reversed(record["curve"]) if "eval" in r)
    names = {"conflict/image": "conflict, told to follow the image", "conflict/text": "conflict, told to follow the text",
             "consistent/image": "consistent, image instruction", "consistent/text": "consistent, text instruction",
             "image_only": "image-only control", "text_only": "text-only control"}
    lines = [
        "# The model organism",
        "",
        "A `LlavaForConditionalGeneration` (transformers) trained from scratch on synthetic image/text",
        "conflicts by `python -m mfutils.train_organism` (see `mfutils/training.py`, `mfutils/synthetic.py`).",
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
        "Seeded synthetic items (`mfutils.synthetic`): one coloured shape (8 colours x 4 shapes) on a",
        "noisy 32 px canvas; a text context stating a colour and a shape; a colour or shape question;",
        "the paper's prompt pieces (context label, modality instruction, question, answer-format constraint).",
        "Training mix: 50% conflicts (the instruction names image or text, many paraphrases), 20% consistent",
        "items, 15% image-only and 15% text-only questions. Six nouns carry a canonical colour (a tomato is",
        "red) that training confirms 70% of the time, so the model holds a prior. Held out from training:",
        "some (noun, colour, shape) combinations and some instruction paraphrases.",
        "",
        "## Training",
        "",
        f"- {cfg['steps']} steps, batch {cfg['batch_size']}, AdamW lr {cfg['lr']} (warm-up {cfg['warmup']}, cosine), "
        f"weight decay {cfg['weight_decay']}, seed {cfg['seed']}, {cfg['threads']} thread(s)",
        f"- loss: cross-entropy of the instructed answer's token at the last position",
        f"- time: {record['train_seconds']:.0f} s on {record['machine']['processor']} "
        f"(python {record['machine']['python']}, torch {record['machine']['torch']})",
        f"- weights digest (tensor SHA-256): `{record['weights_sha256'][:16]}…`; deterministic: the same seed,",
        "  thread count and package versions give the same digest (`python -m mfutils.train_organism --check`)",
        "",
        f"## Held-out accuracy (monitor set, {cfg['eval_size']} items, at the last step)",
        "",
        "| group | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {names.get(k, k)} | {v:.1%} |" for k, v in final.items()]
    lines += ["", "Chapter 00 of the book measures the same with confidence intervals on larger held-out sets.", ""]
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
