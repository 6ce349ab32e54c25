"""The organism page's tables, from the shipped training records."""

from __future__ import annotations

import pandas as pd

from mfutils.book.comparison import front_name  # noqa: F401  (the page names the models as the front page does)
from mfutils.models import pretrained_organism as po
from mfutils.models.training import parse_mix


def shipped() -> tuple[str, ...]:
    """The pretrained organisms whose trained parts and training record are in this checkout."""
    return tuple(m for m in po.ORGANISMS if (po.pretrained_dir(m) / "training.json").exists())


def pretrained_table(model_ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One column per pretrained organism, one row per fact of its training record
    (``models/<folder>/training.json``): base model, origin, licence, tower, trained parts,
    training, mix, instruction sentences."""
    cols = {}
    for model_id in model_ids or shipped():
        org = po.organism(model_id)
        rec = po.record(model_id)
        arch, cfg, base = rec["architecture"], rec["train_config"], rec["base"]
        layers, heads, kv, width = org.shape
        wheels = (f"four chunk wheels `{base['distribution']}-part1..4=={base['version']}`, joined here"
                  if base.get("chunks") else f"the PyPI wheel `{base['distribution']}=={base['version']}`")
        cols[front_name(model_id)] = {
            "language model": f"{base['name']} ({'instruction-tuned' if org.instruct else 'base model, not instruction-tuned'}): "
                              f"{layers} layers × {heads} heads ({kv} key/value head{'s' * (kv > 1)}), width {width}, "
                              f"{rec['model_parameters']:,} parameters in all",
            "origin": base["origin"],
            "licence of the base model": base["licence"],
            "base file": f"`{base['file']}` from {wheels}; sha256 `{base['sha256'][:16]}…`",
            "vision tower": f"CLIP, {arch['vision_layers']} layers, hidden {arch['vision_hidden']}, {arch['image_size']} px images, "
                            f"{arch['patch_size']} px patches",
            "trained here": f"{rec['trained_parameters']['total']:,} parameters: the tower, the projector and rank-{arch['lora_rank']} "
                            f"LoRA factors ({rec['trained_parameters']['lora']:,}) on every attention and MLP projection",
            "training": f"{rec['steps_run']} steps × batch {cfg['batch_size']} after {cfg['vision_pretrain_steps']} tower and "
                        f"{cfg['align_steps']} projector-alignment steps; {rec['seconds']['total'] / 60:.0f} min on "
                        f"{rec['machine']['processor']}, {cfg['threads']} threads, seed {cfg['seed']}",
            "training mix": ", ".join(f"{share:.0%} {kind}" for kind, share in parse_mix(cfg["mix"]).items()),
            "instructions": f"{rec['phrasings']['train_per_direction']} training sentences per direction; "
                            f"{rec['phrasings']['heldout_per_direction']} held out per direction, the paper's own among them",
        }
    return pd.DataFrame(cols).rename_axis("").reset_index()


def final_accuracy_table(model_ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Each pretrained organism's accuracy on its training's final held-out monitor, per group."""
    cols = {}
    for model_id in model_ids or shipped():
        final = po.record(model_id)["final_eval"]
        cols[f"{front_name(model_id)} ({final['items']} items)"] = final["accuracy"]
    return pd.DataFrame(cols).rename_axis("group").reset_index()


def chapter0_readings(**overrides) -> pd.DataFrame:
    """One row per organism the book executes (its own model, then the comparison's): chapter 0's
    held-out combinations (following the image, the text) and which core training sentences it
    misses (:func:`mfutils.findings.behaviour.shortfall_sentence`), from chapter 0's finished runs.
    The final monitor beside it asks the whole training bank, where the core sentences are a few
    percent; chapter 0 asks them alone. A model with no finished chapter 0 says so. ``overrides``:
    parameters both runs share (the output folder)."""
    from mfutils.book import chapters
    from mfutils.findings.behaviour import shortfall_sentence
    from mfutils.runs.results import IncompleteResultsError, load_run

    specs = [chapters.chapter_spec("00_behaviour", **overrides),
             chapters.chapter_spec("00_behaviour", **{**overrides, **chapters.comparison_overrides("00_behaviour")})]
    rows = []
    for spec in specs:
        row = {"organism": front_name(spec.model_id)}
        try:
            res = load_run(spec)["results"]
        except IncompleteResultsError:
            rows.append(row | {"held-out combinations: image": "no finished run", "held-out combinations: text": "",
                               "training sentences": ""})
            continue
        summary = pd.DataFrame(res["summary"])
        for target in ("image", "text"):
            r = summary[(summary["condition"] == "held-out combinations") & (summary["kind"] == "conflict")
                        & (summary["target"] == target)]
            row[f"held-out combinations: {target}"] = "—" if r.empty else (
                f"{r.iloc[0]['following_ratio']:.0%} [{r.iloc[0]['ci_low']:.0%}, {r.iloc[0]['ci_high']:.0%}] "
                f"of {int(r.iloc[0]['n'])}")
        trained = pd.DataFrame(res.get("trained_phrasings", []))
        row["training sentences"] = (shortfall_sentence(trained, "training sentences") if len(trained)
                                     else "not measured (not synthetic data)")
        rows.append(row)
    return pd.DataFrame(rows)
