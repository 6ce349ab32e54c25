"""Chapter 02: deep arbitration -- spec, LDAR tables and verdicts (the lens itself is in
:mod:`mfutils.findings.lens`).

**LDAR** (latent decision alignment rate) at a layer: the share of samples whose lens decision
(the sign of the follow - competitor margin) at the instruction tokens equals the model's
final decision. It is read at every instruction token and at their mean, separately on
samples the model follows and fails, beside the share a constant "follow" reader would get:
with following near 100%, a reader that always says "follow" scores near 100% too, so only
the *balanced* LDAR (mean of the followed and failed rates; 0.5 for any constant reader) can
show that the decision is legible.
"""

from __future__ import annotations

import typing

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mfutils.findings import rules
from mfutils.runs.params import RunSpec


@dataclass(frozen=True)
class ArbitrationSpec(RunSpec):
    chapter: str = "02_deep_arbitration"
    #: the files a finished run holds (:meth:`mfutils.runs.results.RunWriter.finish` refuses to finish without them)
    OUTPUTS: typing.ClassVar[tuple[str, ...]] = (
        "ldar.csv", "ldar.parquet", "ldar.png", "lens.csv", "lens.parquet", "lens_margin.csv", "lens_margin.png",
        "probe.csv", "probe.parquet", "results.json",
    )
    n_samples: int = 48
    n_boot: int = 500


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` that leaves all-NaN slices NaN without a warning (samples answering
    neither candidate, or a group with no failures, are all-NaN by design)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis)


def emergence_layer(margin_by_layer: np.ndarray) -> int:
    """First layer whose mean margin exceeds half the final layer's."""
    m = np.asarray(margin_by_layer)
    return int(np.argmax(m > 0.5 * m[-1]))


def emergence_ci(margins: np.ndarray, n_boot: int = 500, seed: int = 0) -> tuple[float, float, float]:
    """Relative depth at which the margin emerges (:func:`emergence_layer` of the mean over
    samples) and its 95% bootstrap interval over samples. ``margins``: ``(B, L)``."""
    B, L = margins.shape
    rng = np.random.default_rng(seed)
    boots = [emergence_layer(margins[rng.integers(0, B, B)].mean(0)) for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return (float(rules.depth(emergence_layer(margins.mean(0)), L)), float(rules.depth(lo, L)), float(rules.depth(hi, L)))


def alignment(meta: pd.DataFrame, margins: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample agreement of the lens decision with the final one, at each instruction token
    and at their mean. ``margins``: ``(N, P, L)`` from :func:`mfutils.findings.lens.group_reads`.

    Returns ``{"mean": (N, L), "token k": (N, L), ..., "last": (N, L)}`` of 1.0 / 0.0 (NaN where
    a sample has no k-th token); samples answering neither candidate are NaN throughout."""
    final = np.sign(meta["model_margin"].to_numpy())[:, None]
    neither = (meta["decision"].to_numpy() == 0)[:, None]
    n_tok = (~np.isnan(margins[:, :, 0])).sum(1)

    def agree(m):
        a = (np.sign(m) == final).astype(float)
        a[np.isnan(m) | neither] = np.nan
        return a

    out = {"mean": agree(_nanmean(margins, 1)),
           "last": agree(margins[np.arange(len(margins)), n_tok - 1])}
    for k in range(margins.shape[1]):
        out[f"token {k + 1}"] = agree(margins[:, k])
    return out


def ldar_table(meta: pd.DataFrame, margins: np.ndarray) -> pd.DataFrame:
    """Long table: LDAR per (target, read, outcome, layer), with the constant-follow reader's
    share (``chance``) and the balanced LDAR for each read."""
    L = margins.shape[2]
    agree = alignment(meta, margins)
    rows = []
    for target in ("image", "text"):
        sel = (meta["target"] == target).to_numpy() & (meta["decision"] != 0).to_numpy()
        followed = (meta["decision"] == 1).to_numpy()
        chance = float(followed[sel].mean()) if sel.any() else float("nan")
        for read, a in agree.items():
            for outcome, s in (("all", sel), ("followed", sel & followed), ("failed", sel & ~followed)):
                v = _nanmean(a[s], 0) if s.any() else np.full(L, np.nan)
                rows += [{"target": target, "read": read, "outcome": outcome, "layer": l, "depth": float(rules.depth(l, L)),
                          "ldar": float(v[l]), "n": int(s.sum()), "chance": chance} for l in range(L)]
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["target", "read", "layer"], columns="outcome", values="ldar", dropna=False)
    bal = ((wide["followed"] + wide["failed"]) / 2).rename("balanced").reset_index()
    return df.merge(bal, on=["target", "read", "layer"], how="left")


def _balanced_ci(followed: np.ndarray, failed: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of two group means, with a bootstrap that resamples each group on its own."""
    rng = np.random.default_rng(seed)
    boots = [(followed[rng.integers(0, len(followed), len(followed))].mean()
              + failed[rng.integers(0, len(failed), len(failed))].mean()) / 2 for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float((followed.mean() + failed.mean()) / 2), float(lo), float(hi)


def verdicts(last_margins: dict[str, np.ndarray], meta: pd.DataFrame, anchor_margins: np.ndarray,
             attn_margin: dict[str, np.ndarray], n_layers: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Rules 02-emerge, 02-ldar and 02-attn of :data:`mfutils.findings.rules.RULES`.

    ``last_margins[target]``: ``(B, L)`` lens margins at the last position; ``anchor_margins``:
    ``(N, P, L)`` at the instruction tokens (rows as ``meta``); ``attn_margin[target]``:
    ``(B, L)`` attention contributions to the margin."""
    L = n_layers
    rows = []

    r = rules.rule("02-emerge")
    em = {t: emergence_ci(m, n_boot, seed) for t, m in last_margins.items()}
    inside = {t: lo >= r.band[0] for t, (_, lo, _) in em.items()}
    point = {t: est >= r.band[0] for t, (est, _, _) in em.items()}
    rows.append(rules.verdict_row(r, "; ".join(f"{t}: emerges at depth {e:.2f} [{lo:.2f}, {hi:.2f}], final margin "
                                              f"{float(last_margins[t][:, -1].mean()):+.2f}" for t, (e, lo, hi) in em.items()),
                                  "reproduced" if all(inside.values()) else ("partly" if any(point.values()) else "not reproduced")))

    r = rules.rule("02-ldar")
    layers = rules.band_layers(r.band, L)
    mean_read = _nanmean(alignment(meta, anchor_margins)["mean"][:, layers], 1)  # (N,) band mean per sample
    parts, per_target = [], []
    for t in ("image", "text"):
        sel = (meta["target"] == t).to_numpy() & (meta["decision"] != 0).to_numpy()
        fol = sel & (meta["decision"] == 1).to_numpy()
        fail = sel & (meta["decision"] == -1).to_numpy()
        est, lo, hi = rules.band_statistic(mean_read[sel], n_boot, seed)
        chance = float(fol[sel].mean()) if sel.any() else float("nan")
        text = f"{t}: LDAR {est:.0%} [{lo:.0%}, {hi:.0%}] vs constant reader {chance:.0%}"
        if fail.sum() >= rules.MIN_FAILURES_FOR_CHANCE:
            b = _balanced_ci(mean_read[fol], mean_read[fail], n_boot, seed)
            beats = b[1] > 0.5
            text += f", balanced {b[0]:.0%} [{b[1]:.0%}, {b[2]:.0%}] ({int(fail.sum())} failures)"
        else:
            beats = False
            text += f"; only {int(fail.sum())} failures: cannot be told from a constant reader"
        parts.append(text)
        per_target.append("reproduced" if beats and est >= r.threshold else ("partly" if beats else "not reproduced"))
    where = f"layers {layers[0]}–{layers[-1]}"
    verdict, none = rules.combine_directions(dict(zip(("image", "text"), per_target)))
    rows.append(rules.verdict_row(r, "; ".join(parts) + f" ({where})" + (f"; {none}" if none else ""), verdict))

    r = rules.rule("02-attn")
    layers = rules.band_layers(r.band, L)
    stats = {t: rules.band_statistic(a[:, layers].sum(1), n_boot, seed) for t, a in attn_margin.items()}
    verdict, none = rules.combine_directions({t: rules.effect_verdict(r, *s) for t, s in stats.items()})
    n = {t: len(a) for t, a in attn_margin.items()}
    rows.append(rules.verdict_row(r, "; ".join(f"{t}: {rules.effect_text(s, r.threshold, n[t])}" for t, s in stats.items())
                                  + f" (layers {layers[0]}–{layers[-1]}, summed)" + (f"; {none}" if none else ""),
                                  verdict))
    return pd.DataFrame(rows)


#: the routes chapter 2 compares with the lens margin's emergence
ROUTE_EDGES = ("TextCtx -/-> Instruction", "Vision -/-> Instruction", "Vision -/-> Text")
