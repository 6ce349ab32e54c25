"""Chapter 05: block the arbitration heads, against random heads from the same layers; check
general ability; amplify the heads on failed samples.

The heads are chosen by rule 04-specific (:mod:`mfutils.findings.rules`) on chapter 04's conflicts and
scores (:func:`mfutils.book.crossrefs.chapter4_scores`), before any blocking; blocking and
amplification are measured on an evaluation split of another seed (:data:`EVAL_SEED_OFFSET`).
The set is never chosen by which scorer's heads destroy most, which would reward heads that
every answer needs.
"""

from __future__ import annotations

import typing

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mfutils.findings.evaluation import run_readouts
from mfutils.engine.interventions import scale_heads  # noqa: F401  (re-exported for the chapter)
from mfutils.findings import rules
from mfutils.engine.metrics import bootstrap_ci
from mfutils.runs.params import RunSpec

FRACTIONS = (0.01, 0.02, 0.05, 0.10)
#: the evaluation split's seed offset: conflicts of another seed than chapter 04's, on whose
#: scores the heads are chosen (:func:`mfutils.book.crossrefs.chapter4_scores`)
EVAL_SEED_OFFSET = 1000
ALPHAS = (-1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class CausalSpec(RunSpec):
    chapter: str = "05_causal_interventions"
    #: the files a finished run holds (:meth:`mfutils.runs.results.RunWriter.finish` refuses to finish without them)
    OUTPUTS: typing.ClassVar[tuple[str, ...]] = (
        "amplification.csv", "amplification.parquet", "amplification.png", "amplification_items.csv",
        "amplification_items.parquet", "blocking.csv", "blocking.parquet", "blocking.png", "blocking_draws.csv",
        "blocking_draws.parquet", "failure_pool.csv", "failure_pool.parquet", "results.json", "stability.csv",
        "stability.parquet", "stability_draws.csv", "stability_draws.parquet",
    )
    n_samples: int = 32
    #: random same-layer head sets at the verdict's fraction (rule of 2026-12-06: a percentile
    #: band needs at least rules.MIN_RANDOM_DRAWS; fewer gives "not measurable")
    n_random: int = 50
    #: random sets at the curve's other fractions, which no verdict reads (drawn for the figure)
    n_random_curve: int = 10
    top_fraction: float = 0.05
    exhaustive: bool = False  # as in chapter 04: False skips single-head ablation scoring


def random_same_layers(top: list[tuple[int, int]], n_heads: int, rng: np.random.Generator,
                       n_layers: int | None = None) -> list[tuple[int, int]]:
    """As many heads as ``top``, one per top head drawn from the same layer, never a top head.

    When a layer has no head left (the top set fills it), the draw moves to the nearest layer
    that has one, so the random set stays as close in depth as the model allows.
    """
    n_layers = n_layers or max(l for l, _ in top) + 1
    taken = set(top)
    out: list[tuple[int, int]] = []
    for layer, _ in top:
        for dist in range(n_layers):
            pool = [(l, h) for l in sorted({layer - dist, layer + dist}) if 0 <= l < n_layers for h in range(n_heads)
                    if (l, h) not in taken and (l, h) not in out]
            if pool:
                break
        else:
            raise ValueError(f"no head left to draw: {len(top)} top heads of {n_layers * n_heads}")
        out.append(pool[int(rng.integers(len(pool)))])
    return out


def blocking_curve(bundle, items, controls, head_sets: dict[float, list[tuple[int, int]]], batch_size: int,
                   n_random: int, seed: int, verdict_fraction: float = 0.05, n_random_curve: int | None = None) -> pd.DataFrame:
    """Following (per direction) and control accuracy with each fraction's head set zeroed, and
    the following under random same-layer head sets of the same size: ``n_random`` draws at
    ``verdict_fraction``, ``n_random_curve`` (default ``n_random``) at the other fractions.
    ``head_sets``: fraction -> heads (an empty set is skipped). One row per (set, measure)
    with ``value`` (share), ``followed`` and ``n``.

    Random sets are read on the conflicts only: no verdict reads their control accuracy, and
    they are most of the chapter's cost. Each set runs as full passes. Recomputing each from its
    lowest blocked layer on one cached clean pass (as head ablation does) was tried on the
    pretrained organism (2026-12-01): its sets reach down to the first layers, so that spent 97%
    of the full passes, and the chapter took 641 s against 552 s. Tiling several sets into one
    pass (one set per copy of the batch) would save no arithmetic on a CPU, only overheads.
    """
    ad = bundle.adapter
    rng = np.random.default_rng(seed)
    n_curve = n_random if n_random_curve is None else n_random_curve
    rows = []

    def measure(heads, kind, fraction, draw, with_controls=True):
        ctx = (lambda b: scale_heads(ad, heads, 0.0)) if heads else None
        tables = [run_readouts(bundle, items, batch_size, intervention=ctx).assign(measure=lambda t: "MF " + t["target"])]
        if with_controls:
            tables.append(run_readouts(bundle, controls, batch_size, intervention=ctx).assign(measure=lambda t: t["kind"]))
        for m, g in pd.concat(tables).groupby("measure", sort=True):
            k = int((g["decision"] == 1).sum())
            rows.append({"heads": kind, "fraction": fraction, "k": len(heads), "draw": draw, "measure": m,
                         "value": k / len(g), "followed": k, "n": len(g)})

    measure([], "none", 0.0, 0)
    for f, top in head_sets.items():
        if not top:
            continue
        measure(top, "top", f, 0)
        for d in range(n_random if np.isclose(f, verdict_fraction) else n_curve):
            measure(random_same_layers(top, ad.n_heads, rng, ad.n_layers), "random", f, d, with_controls=False)
    return pd.DataFrame(rows)


def summarize_blocking(curve: pd.DataFrame) -> pd.DataFrame:
    """Per fraction and measure: the top-head value with its Wilson interval, the random sets'
    mean, 2.5/97.5 percentiles and number of draws, and the relative drop from the unablated
    baseline."""
    base = curve[curve["heads"] == "none"].set_index("measure")["value"]
    out = []
    for (f, m), g in curve[curve["heads"] != "none"].groupby(["fraction", "measure"]):
        top = g[g["heads"] == "top"].iloc[0]
        rnd = g[g["heads"] == "random"]["value"]
        _, lo, hi = rules.wilson(int(top["followed"]), int(top["n"]))
        out.append({"fraction": f, "k": int(g["k"].iloc[0]), "measure": m, "n": int(top["n"]), "baseline": float(base[m]),
                    "top": float(top["value"]), "top_ci_low": lo, "top_ci_high": hi, "draws": len(rnd),
                    "random_mean": float(rnd.mean()) if len(rnd) else float("nan"),
                    "random_p2.5": float(rnd.quantile(0.025)) if len(rnd) else float("nan"),
                    "random_p97.5": float(rnd.quantile(0.975)) if len(rnd) else float("nan"),
                    "top_relative_drop": (float(base[m]) - float(top["value"])) / float(base[m]) if base[m] else float("nan")})
    return pd.DataFrame(out)


def amplification(bundle, items, heads, batch_size: int, alphas=ALPHAS, n_boot: int = 500,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scale ``heads`` by each alpha on ``items`` (the failure pool): per item and alpha the
    decision, and per alpha and direction the share of failures repaired (bootstrap CI) and
    of successes broken. Returns ``(summary, per_item)``; ``per_item`` has ``uid``, ``target``,
    ``alpha``, ``clean`` (decision without scaling) and ``decision``."""
    ad = bundle.adapter
    clean = run_readouts(bundle, items, batch_size).set_index("uid")
    per_item = []
    for a in alphas:
        # alpha = 1 multiplies by one, which changes no bit (tested): the clean pass is its pass
        t = clean if a == 1 else run_readouts(bundle, items, batch_size,
                                               intervention=lambda b, a=a: scale_heads(ad, heads, a)).set_index("uid")
        per_item.append(pd.DataFrame({"uid": clean.index, "target": clean["target"].to_numpy(), "alpha": a,
                                      "clean": clean["decision"].to_numpy(), "decision": t.loc[clean.index, "decision"].to_numpy()}))
    per_item = pd.concat(per_item, ignore_index=True)
    rows = []
    for (a, target), g in per_item.groupby(["alpha", "target"], sort=True):
        failed, ok = g[g["clean"] != 1], g[g["clean"] == 1]
        rep = (failed["decision"] == 1).astype(float)
        r_est, r_lo, r_hi = bootstrap_ci(rep, n_boot=n_boot, seed=seed) if len(rep) else (float("nan"),) * 3
        rows.append({"alpha": a, "target": target, "n_failed": len(failed), "repaired": r_est, "repaired_ci_low": r_lo,
                     "repaired_ci_high": r_hi, "n_followed": len(ok),
                     "broken": float((ok["decision"] != 1).mean()) if len(ok) else float("nan")})
    return pd.DataFrame(rows), per_item


def block_verdict(summary: pd.DataFrame, curve: pd.DataFrame, fraction: float = 0.05) -> dict:
    """Rule 05-block's row (see :func:`verdicts`): per direction the blocked ratio's Wilson
    interval against the band of at least :data:`mfutils.findings.rules.MIN_RANDOM_DRAWS`
    random same-layer sets, combined over directions."""
    r = rules.rule("05-block")
    if summary.empty:
        return rules.verdict_row(r, f"no arbitration head at {fraction:.0%}", "not measurable")
    s = summary[np.isclose(summary["fraction"], fraction)]
    at = curve[np.isclose(curve["fraction"], fraction)]
    mf = s[s["measure"].str.startswith("MF")]
    if mf.empty:
        return rules.verdict_row(r, f"no arbitration head at {fraction:.0%}", "not measurable")
    per, notes = {}, []
    for m in mf.itertuples():
        draws = at[(at["heads"] == "random") & (at["measure"] == m.measure)]["value"].to_numpy()
        top = at[(at["heads"] == "top") & (at["measure"] == m.measure)].iloc[0]
        if len(draws) < rules.MIN_RANDOM_DRAWS:
            per[m.measure], note = "not measurable", f"{len(draws)} random sets (at least {rules.MIN_RANDOM_DRAWS} needed)"
        else:
            per[m.measure], note = rules.blocking_direction(r, m.baseline, int(top["followed"]), int(top["n"]), draws)
        notes.append(f"{m.measure}: {m.baseline:.2f} → {note}")
    verdict, none = rules.combine_directions(per)
    return rules.verdict_row(r, "; ".join(notes) + f"; k = {int(mf['k'].iloc[0])}" + (f"; {none}" if none else ""), verdict)


def split_blocking(bundle, items, controls, splits: list[dict], preregistered: list[tuple[int, int]], batch_size: int,
                   n_random: int, seed: int, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rule of 2026-12-06 (stability): each selection split's head set (chapter 04's
    :func:`mfutils.findings.head_scores.split_selection`) blocked on the evaluation conflicts
    against its own ``n_random`` random same-layer sets, and judged by rule 05-block.

    Returns ``(table, draws)``: per split its size, Jaccard overlaps
    (:func:`mfutils.findings.rules.stability_table`) and 05-block verdict and note; and every
    split's :func:`blocking_curve` rows with a ``split`` column."""
    table = rules.stability_table(preregistered, [s["heads"] for s in splits])
    verdicts_, notes, draws = [], [], []
    for s in splits:
        if not s["heads"]:
            verdicts_.append("not measurable")
            notes.append("no arbitration head chosen on this split")
            continue
        # each split draws its random sets from its own stream, fixed before the run
        curve = blocking_curve(bundle, items, controls, {fraction: s["heads"]}, batch_size, n_random,
                               seed + 100 * s["split"], fraction, 0)
        row = block_verdict(summarize_blocking(curve), curve, fraction)
        verdicts_.append(row["verdict"])
        notes.append(row["ours"])
        draws.append(curve.assign(split=s["split"]))
    table = table.assign(verdict=verdicts_, note=notes)
    return table, (pd.concat(draws, ignore_index=True) if draws else pd.DataFrame())


def verdicts(summary: pd.DataFrame, curve: pd.DataFrame, per_item: pd.DataFrame, fraction: float = 0.05) -> pd.DataFrame:
    """Rules 05-block, 05-general and 05-amplify of :data:`mfutils.findings.rules.RULES`, under
    the rules of 2026-12-06: the blocked ratio's Wilson interval below the band of at least
    :data:`mfutils.findings.rules.MIN_RANDOM_DRAWS` random sets, by the threshold, in both
    directions (:func:`mfutils.findings.rules.blocking_direction`); controls at their ceiling
    say so; amplification against α = 1 and α = 0 on at least
    :data:`mfutils.findings.rules.MIN_FAILURES` failures per direction
    (:func:`mfutils.findings.rules.amplification_verdict`).

    ``summary``: :func:`summarize_blocking`; ``curve``: :func:`blocking_curve`; ``per_item``:
    :func:`amplification`'s second table."""
    s = summary[np.isclose(summary["fraction"], fraction)]
    rows = [block_verdict(summary, curve, fraction)]
    r = rules.rule("05-general")
    ctrl = s[~s["measure"].str.startswith("MF")]
    if ctrl.empty:
        rows.append(rules.verdict_row(r, "no blocking measured", "not measurable"))
    else:
        kept = bool(((ctrl["baseline"] - ctrl["top"]) < r.threshold).all())
        parts = [f"{m.measure}: {m.baseline:.2f} → {m.top:.2f} [{m.top_ci_low:.2f}, {m.top_ci_high:.2f}] of n = {m.n}"
                 + (f" ({b})" if (b := rules.bound_note(m.baseline, m.top)) else "") for m in ctrl.itertuples()]
        rows.append(rules.verdict_row(r, ", ".join(parts), "reproduced" if kept else "not reproduced"))
    r = rules.rule("05-amplify")
    if per_item.empty:
        rows.append(rules.verdict_row(r, "no arbitration head to amplify", "not measurable"))
    else:
        per, notes = {}, []
        for target in ("image", "text"):
            g = per_item[per_item["target"] == target]
            failed = g[(g["clean"] != 1)]
            repaired = {a: (failed[np.isclose(failed["alpha"], a)].sort_values("uid")["decision"] == 1).to_numpy().astype(float)
                        for a in (rules.VERDICT_ALPHA, 1.0, 0.0)}
            ok = g[(g["clean"] == 1) & np.isclose(g["alpha"], rules.VERDICT_ALPHA)]
            per[target], note = rules.amplification_verdict(r, repaired, int((ok["decision"] != 1).sum()), len(ok))
            notes.append(f"{target}: {note}")
        verdict, none = rules.combine_directions(per)
        rows.append(rules.verdict_row(r, "; ".join(notes) + (f"; {none}" if none else ""), verdict))
    return pd.DataFrame(rows)

