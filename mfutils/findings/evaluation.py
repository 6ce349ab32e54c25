"""Behaviour: run a model over items and tabulate what it answers.

Shared by every chapter: :func:`readout_table` is the clean (no-intervention) run, and
:func:`run_readouts` takes an optional intervention factory so a chapter can measure the
same table under knockouts or head scaling without duplicating the loop.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from mfutils.data import instruction_banks, synthetic
from mfutils.engine.encoding import Batch, batches, encode
from mfutils.engine.metrics import answer_tokens, bootstrap_ci, forward_last_logits, readout
from mfutils.data.schema import Item

#: Kinds mixed into a synthetic evaluation set (shares).
EVAL_MIX = {"conflict": 0.6, "consistent": 0.2, "image_only": 0.1, "text_only": 0.1}


def load_items(data: str, n: int, seed: int, kinds: dict[str, float] | None = None, coco_dir: str = "",
               phrasings=None) -> list[Item]:
    """Items for a chapter. ``data``: ``"synthetic"`` (held-out combinations, training
    paraphrases), ``"synthetic_heldout_paraphrase"`` (held-out paraphrases too), or the path
    of a paper item file (JSON/JSONL; images under ``coco_dir``). Returns at most ``n`` items.
    ``phrasings``: the synthetic paraphrase bank (:func:`mfutils.data.instruction_banks.phrasings_for`).
    """
    if data == "synthetic":
        return synthetic.make_split("eval", n, seed, kinds or EVAL_MIX, phrasings)
    if data == "synthetic_heldout_paraphrase":
        return synthetic.make_split("eval_heldout_paraphrase", n, seed, kinds or EVAL_MIX, phrasings)
    from mfutils.data.real_items import load_items as load_real

    items = load_real(Path(data), coco_dir=coco_dir or None)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))[:n]
    return [items[i] for i in sorted(order)]


def general_ability_controls(items: list[Item]) -> list[Item]:
    """The image-only and text-only versions of the first half of ``items``: the general-ability
    set that chapters 3 and 5 re-read under their interventions (half, to halve its cost)."""
    return [c for it in items[: len(items) // 2] for c in derive_controls(it)]


def derive_controls(item: Item) -> list[Item]:
    """The item's single-modality versions: image only (no context) and text only (no image)."""
    base = item.to_dict()
    out = []
    if item.image_ref and item.answer_image:
        d = dict(base, uid=item.uid + "/image_only", kind="image_only", context=None, target=None,
                 instruction=None, answer_text=None, candidates_text=())
        out.append(Item.from_dict(d))
    if item.context and item.answer_text:
        d = dict(base, uid=item.uid + "/text_only", kind="text_only", image_ref=None, target=None,
                 instruction=None, answer_image=None, candidates_image=())
        out.append(Item.from_dict(d))
    return out


def with_target(item: Item, target: str, instruction: str) -> Item:
    """The same conflict with the other instruction (for both directions on the same items)."""
    return Item.from_dict(dict(item.to_dict(), uid=f"{item.uid}/{target}", target=target, instruction=instruction))


Intervention = Callable[[Batch], contextlib.AbstractContextManager]


@torch.no_grad()
def run_readouts(bundle, items: list[Item], batch_size: int, intervention: Intervention | None = None,
                 layout: str = "paper") -> pd.DataFrame:
    """One row per item: decision and last-position answer statistics, optionally under an
    intervention (a callable ``batch -> context manager``)."""
    rows = []
    tok = bundle.tokenizer
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk, layout).to(bundle.device, bundle.dtype)
        answers = [answer_tokens(tok, it) for it in chunk]
        ctx = intervention(batch) if intervention else contextlib.nullcontext()
        with ctx:
            logits = forward_last_logits(bundle.model, batch.inputs, batch.lengths)
        r = readout(logits, answers)
        binary = r.binary
        for b, it in enumerate(chunk):
            rows.append({
                "uid": it.uid, "kind": it.kind, "target": it.target or "", "decision": int(r.decision[b]),
                "p_follow": float(r.p_follow[b]), "p_comp": float(r.p_comp[b]),
                "binary": float(binary[b]) if it.competitor_answer else float("nan"),
                "logit_diff": float(r.logit_diff[b]) if it.competitor_answer else float("nan"),
                "prior": (it.meta or {}).get("prior"),
                "competitor_is_prior": bool(it.competitor_answer and (it.meta or {}).get("prior") == it.competitor_answer),
                "following_is_prior": bool((it.meta or {}).get("prior") == it.following_answer),
            })
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Following ratio (or accuracy, for controls) with a 95% bootstrap CI, per kind and target."""
    out = []
    for (kind, target), g in table.groupby(["kind", "target"], sort=True):
        est, lo, hi = bootstrap_ci((g["decision"] == 1).astype(float), n_boot=n_boot, seed=seed)
        out.append({"kind": kind, "target": target or "-", "n": len(g), "following_ratio": est,
                    "ci_low": lo, "ci_high": hi, "competitor_share": float((g["decision"] == -1).mean()),
                    "other_share": float((g["decision"] == 0).mean())})
    return pd.DataFrame(out)


def control_filter(bundle, items: list[Item], batch_size: int) -> tuple[list[Item], pd.DataFrame]:
    """The paper's per-model filter: keep conflict items the model answers right from each
    modality alone, so that a wrong answer under conflict is a following failure.

    Returns the kept items and the control readouts (one row per derived control).
    """
    controls = [c for it in items for c in derive_controls(it)]
    table = run_readouts(bundle, controls, batch_size)
    ok = table.groupby(table["uid"].str.rsplit("/", n=1).str[0])["decision"].apply(lambda d: bool((d == 1).all()))
    kept = [it for it in items if ok.get(it.uid, False)]
    return kept, table


def conflict_items(spec, bundle=None, seed_offset: int = 0) -> tuple[list[Item], dict]:
    """The analysis chapters' items: the same conflicts under both of the paper's instructions,
    kept by the per-model control filter when ``bundle`` is given.

    Synthetic: ``spec.n_samples`` held-out conflicts x 2 directions. A paper file: its items
    with its own instruction plus the same items with the other instruction.
    Returns ``(items, {"before": n, "kept": n})``.
    """
    seed = spec.seed + seed_offset
    if spec.data.startswith("synthetic"):
        items = synthetic.paper_conflicts(spec.n_samples, seed)
    else:
        from mfutils.data.real_items import load_items as load_real

        own = load_real(Path(spec.data), coco_dir=spec.coco_dir or None)
        other = load_real(Path(spec.data), coco_dir=spec.coco_dir or None, swap_target=True)
        rng = np.random.default_rng(seed)
        pick = sorted(rng.permutation(len(own))[: spec.n_samples])
        items = [own[i] for i in pick] + [Item.from_dict(dict(other[i].to_dict(), uid=other[i].uid + "/swap")) for i in pick]
    stats = {"before": len(items), "kept": len(items)}
    if bundle is not None and spec.control_filter:
        items, _ = control_filter(bundle, items, spec.batch_size)
        stats["kept"] = len(items)
        if not items:
            raise ValueError(
                f"{spec.model_id} answers none of the {stats['before']} items right from each modality alone, so no "
                "conflict survives the per-model filter and there is nothing to analyse. Check that the model is "
                "trained (the organism ships trained) and that images and answers match the data; for a smoke run of an "
                "untrained model only, pass -p control_filter False."
            )
    return items, stats


#: held-out-paraphrase conflicts in a synthetic failure pool, per ``n_samples`` (the analysis
#: conflicts are ``2 x n_samples``, both directions)
HELDOUT_FACTOR = 4


def failure_pool(spec, bundle, heldout_factor: int = HELDOUT_FACTOR, seed_offset: int = 0) -> tuple[list[Item], dict]:
    """Conflicts on which the model's own failures are sought (chapters 02, 03 and 05).

    Failures are never made by editing the model: the pool is the analysis conflicts (the
    paper's two instruction sentences, :func:`conflict_items`) plus, on synthetic data,
    ``heldout_factor x n_samples`` conflicts phrased with instruction paraphrases held out of
    training, which the organism finds harder. Both parts pass the per-model control filter.
    ``seed_offset`` draws a disjoint pool (e.g. to fit a probe). Returns
    ``(items, {"paper instructions": n, "held-out paraphrases": n})``.
    """
    items, _ = conflict_items(spec, bundle, seed_offset)
    held: list[Item] = []
    if spec.data.startswith("synthetic"):
        held = load_items("synthetic_heldout_paraphrase", heldout_factor * spec.n_samples, spec.seed + seed_offset,
                          {"conflict": 1.0}, phrasings=instruction_banks.phrasings_for(spec.model_id))
        if spec.control_filter:
            held, _ = control_filter(bundle, held, spec.batch_size)
    return items + held, {"paper instructions": len(items), "held-out paraphrases": len(held)}
