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
        "amplification.csv", "amplification.parquet", "amplification.png", "blocking.csv", "blocking.parquet",
        "blocking.png", "blocking_draws.csv", "blocking_draws.parquet", "results.json",
    )
    n_samples: int = 32
    n_random: int = 5
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
                   n_random: int, seed: int) -> pd.DataFrame:
    """MF ratio (per direction) and control accuracy with each fraction's head set zeroed, and
    the same for ``n_random`` random same-layer head sets of the same size per fraction.
    ``head_sets``: fraction -> heads (an empty set is skipped).

    Each set runs as full passes. Recomputing each from its lowest blocked layer on one cached
    clean pass (as head ablation does) was tried on the pretrained organism (2026-12-01): its
    sets reach down to the first layers, so that spent 97% of the full passes, and the chapter
    took 641 s against 552 s, the clean pass's caches costing more than the layers saved.
    """
    ad = bundle.adapter
    rng = np.random.default_rng(seed)
    rows = []

    def measure(heads, kind, fraction, draw):
        ctx = (lambda b: scale_heads(ad, heads, 0.0)) if heads else None
        t = run_readouts(bundle, items, batch_size, intervention=ctx)
        c = run_readouts(bundle, controls, batch_size, intervention=ctx)
        for target, g in t.groupby("target"):
            rows.append({"heads": kind, "fraction": fraction, "k": len(heads), "draw": draw, "measure": f"MF {target}",
                         "value": float((g["decision"] == 1).mean())})
        for kind_c, g in c.groupby("kind"):
            rows.append({"heads": kind, "fraction": fraction, "k": len(heads), "draw": draw, "measure": kind_c,
                         "value": float((g["decision"] == 1).mean())})

    measure([], "none", 0.0, 0)
    for f, top in head_sets.items():
        if not top:
            continue
        measure(top, "top", f, 0)
        for d in range(n_random):
            measure(random_same_layers(top, ad.n_heads, rng, ad.n_layers), "random", f, d)
    return pd.DataFrame(rows)


def summarize_blocking(curve: pd.DataFrame) -> pd.DataFrame:
    """Per fraction and measure: top-head value, random mean and 2.5/97.5 percentiles, and
    the relative drop from the unablated baseline."""
    base = curve[curve["heads"] == "none"].set_index("measure")["value"]
    out = []
    for (f, m), g in curve[curve["heads"] != "none"].groupby(["fraction", "measure"]):
        top = g[g["heads"] == "top"]["value"]
        rnd = g[g["heads"] == "random"]["value"]
        out.append({"fraction": f, "k": int(g["k"].iloc[0]), "measure": m, "baseline": float(base[m]),
                    "top": float(top.iloc[0]), "random_mean": float(rnd.mean()) if len(rnd) else float("nan"),
                    "random_p2.5": float(rnd.quantile(0.025)) if len(rnd) else float("nan"),
                    "random_p97.5": float(rnd.quantile(0.975)) if len(rnd) else float("nan"),
                    "top_relative_drop": (float(base[m]) - float(top.iloc[0])) / float(base[m]) if base[m] else float("nan")})
    return pd.DataFrame(out)


def amplification(bundle, items, heads, batch_size: int, alphas=ALPHAS, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Scale ``heads`` by each alpha: share of failures repaired and of successes broken."""
    ad = bundle.adapter
    clean = run_readouts(bundle, items, batch_size).set_index("uid")
    base = clean["decision"]
    failed = base.index[base != 1]
    ok = base.index[base == 1]
    rows = []
    for a in alphas:
        # alpha = 1 multiplies by one, which changes no bit (tested): the clean pass is its pass
        t = clean if a == 1 else run_readouts(bundle, items, batch_size,
                                               intervention=lambda b, a=a: scale_heads(ad, heads, a)).set_index("uid")
        rep = (t.loc[failed, "decision"] == 1).astype(float) if len(failed) else pd.Series(dtype=float)
        brk = (t.loc[ok, "decision"] != 1).astype(float) if len(ok) else pd.Series(dtype=float)
        r_est, r_lo, r_hi = bootstrap_ci(rep, n_boot=n_boot, seed=seed)
        rows.append({"alpha": a, "n_failed": len(failed), "repaired": r_est, "repaired_ci_low": r_lo,
                     "repaired_ci_high": r_hi, "n_followed": len(ok), "broken": float(brk.mean()) if len(brk) else float("nan")})
    return pd.DataFrame(rows)


def verdicts(summary: pd.DataFrame, amp: pd.DataFrame, fraction: float = 0.05) -> pd.DataFrame:
    """Rules 05-block, 05-general and 05-amplify of :data:`mfutils.findings.rules.RULES`."""
    s = summary[np.isclose(summary["fraction"], fraction)]
    rows = []
    r = rules.rule("05-block")
    mf = s[s["measure"].str.startswith("MF")]
    if mf.empty:
        rows.append(rules.verdict_row(r, f"no arbitration head at {fraction:.0%}", "not measurable"))
    else:
        vs = []
        for _, m in mf.iterrows():
            beyond = m["top"] < m["random_p2.5"]
            big = m["top_relative_drop"] >= r.threshold
            vs.append("reproduced" if beyond and big else ("partly" if beyond or m["top_relative_drop"] > rules.PARTLY_DROP else "not reproduced"))
        rows.append(rules.verdict_row(r, ", ".join(
            f"{m.measure}: {m.baseline:.2f} → {m.top:.2f} ({m.top_relative_drop:.0%} drop; random {m.random_mean:.2f} "
            f"[{m['random_p2.5']:.2f}, {m['random_p97.5']:.2f}])" for _, m in mf.iterrows()) + f"; k = {int(mf['k'].iloc[0])}",
            rules.combine(vs)))
    r = rules.rule("05-general")
    ctrl = s[~s["measure"].str.startswith("MF")]
    if ctrl.empty:
        rows.append(rules.verdict_row(r, "no blocking measured", "not measurable"))
    else:
        kept = bool(((ctrl["baseline"] - ctrl["top"]) < r.threshold).all())
        rows.append(rules.verdict_row(r, ", ".join(f"{m.measure}: {m.baseline:.2f} → {m.top:.2f}" for _, m in ctrl.iterrows()),
                                      "reproduced" if kept else "not reproduced"))
    r = rules.rule("05-amplify")
    at = amp[np.isclose(amp["alpha"], rules.VERDICT_ALPHA)]
    if at.empty or at["n_failed"].iloc[0] == 0:
        rows.append(rules.verdict_row(r, "no failures to repair", "not measurable"))
    else:
        a = at.iloc[0]
        net = a["repaired"] > a["broken"]
        rows.append(rules.verdict_row(
            r, f"{a['repaired']:.0%} [{a['repaired_ci_low']:.0%}, {a['repaired_ci_high']:.0%}] of {int(a['n_failed'])} failures "
               f"at α = {rules.VERDICT_ALPHA:g}, breaking {a['broken']:.0%} of {int(a['n_followed'])} successes",
            "reproduced" if net and a["repaired"] >= r.threshold else ("partly" if net and a["repaired"] >= rules.PARTLY_REPAIR else "not reproduced")))
    return pd.DataFrame(rows)
