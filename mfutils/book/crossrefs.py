"""What one chapter reads from another's finished run with the same parameters.

Chapter 2 compares the lens margin's emergence with where chapter 1's routes end
(:func:`routing_effects_end`); chapter 5 chooses its heads by chapter 4's scores
(:func:`chapter4_scores`). Both build the other chapter's spec through the registry
(:mod:`mfutils.book.chapters`), which is why they live in the book's machinery and not in the
chapters' science modules, which the registry imports.
"""

from __future__ import annotations

import json

import pandas as pd

from mfutils.book.chapters import chapter_spec, comparison_overrides
from mfutils.findings import head_scores, rules
from mfutils.findings.arbitration import ROUTE_EDGES, ArbitrationSpec
from mfutils.findings.evaluation import conflict_items
from mfutils.runs.results import IncompleteResultsError, load_run


def _chapter1_run(spec) -> dict:
    """Chapter 1's finished run for the same model, data, seed, device and dtype (its other
    parameters: the notebook's defaults, or the comparison run's for the comparison model)."""
    shared = {k: getattr(spec, k) for k in ("model_id", "data", "coco_dir", "seed", "device", "dtype", "output_dir")}
    compared = comparison_overrides("01_shallow_routing")
    if spec.model_id == compared.get("model_id"):
        shared = {**compared, **shared}
    return load_run(chapter_spec("01_shallow_routing", **shared))


def chapter1_arbitration(spec, model: str, n_layers: int) -> str:
    """"How this model arbitrates" (:func:`mfutils.book.discussion.how_it_arbitrates`) from
    chapter 1's finished run for the same model and data: its route map and patching curves.

    Raises :class:`mfutils.runs.results.IncompleteResultsError` when chapter 1 has no finished
    run for these parameters."""
    from mfutils.book.discussion import how_it_arbitrates
    from mfutils.findings.reference import paper_curves
    from mfutils.findings.routing import paper_route_marks

    d = _chapter1_run(spec)["dir"]
    patching = pd.read_csv(d / "patching.csv") if (d / "patching.csv").exists() else None
    return how_it_arbitrates(model, pd.read_csv(d / "route_map.csv"), patching, n_layers,
                             paper_route_marks(paper_curves(model="Qwen2.5-VL-7B")))


def routing_effects_end(spec: ArbitrationSpec) -> pd.DataFrame:
    """From chapter 1's finished run for the same model, data, seed, device and dtype: the last
    layer at which each route's knockout lowers the log-odds by at least the effect threshold.
    Chapter 1's other parameters are its notebook defaults, or, for the comparison run's model,
    the comparison run's (:func:`mfutils.book.chapters.comparison_overrides`).

    Raises :class:`mfutils.runs.results.IncompleteResultsError` when chapter 1 has no finished run
    for these parameters."""
    ch01 = pd.read_parquet(_chapter1_run(spec)["dir"] / "curves.parquet")
    cut = -rules.EFFECT_THRESHOLD
    routes = ch01[ch01["edge"].isin(ROUTE_EDGES) & (ch01["log_odds"] <= cut)]
    return (routes.groupby(["edge", "target"])["layer"].max().rename(f"last layer with Δ log-odds ≤ {cut}")
            .reset_index())


def chapter4_scores(spec, bundle) -> tuple[dict[str, dict], list[dict], str]:
    """The head scores chapter 05 chooses its heads by: chapter 04's, on chapter 04's conflicts,
    and chapter 04's selection splits (:func:`mfutils.findings.head_scores.split_selection`).

    ``spec``: chapter 05's spec as requested (before a GPU's batch cap). Chapter 04's spec is
    the one a run of it with these parameters builds (:func:`mfutils.book.chapters.chapter_spec`).
    When that run has finished (manifest verified) with exactly this spec, batch size and
    threads included, its ``scores.npz`` and ``results.json`` are read: the numbers this function
    would compute. Otherwise they are computed here, by the same calls on the same conflicts.
    Returns ``(by_dir, splits, where)``, ``where`` saying which, for the page.
    """
    ch04 = chapter_spec("04_sparse_heads", **{k: v for k, v in spec.to_dict().items() if k != "chapter"})
    try:
        done = load_run(ch04)
    except IncompleteResultsError:
        done = None
    if done is not None and done["spec"] == ch04.to_dict() and (done["dir"] / "scores.npz").exists():
        splits = json.loads((done["dir"] / "results.json").read_text())["selection_splits"]
        for s in splits:
            s["heads"] = [tuple(lh) for lh in s["heads"]]
        return (head_scores.load_scores(done["dir"] / "scores.npz"), splits,
                f"read from chapter 4's finished run ({done['dir'].name})")
    items, _ = conflict_items(ch04, bundle)
    by_dir, _ = head_scores.score_directions(bundle, items, ch04.batch_size, ch04.exhaustive, ch04.top_fraction)
    splits = head_scores.split_selection(bundle, items, by_dir, head_scores.reference_score(ch04), ch04.top_fraction,
                                         ch04.batch_size)
    return by_dir, splits, "computed here (chapter 4 has no finished run with these parameters)"
