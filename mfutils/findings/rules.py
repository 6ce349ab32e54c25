"""The pre-registered verdict rules: every claim's measure, layer band, threshold and control,
in one table written before any chapter runs.

A chapter never picks the layer, head set or scorer that gives the strongest result. Each
claim is judged on a statistic fixed here in advance:

- **band**: a range of *relative depth* ``(layer + 0.5) / n_layers``; the statistic is the
  per-sample effect averaged over the band's layers, and its 95% CI is a bootstrap over
  samples of that band mean (never the CI of a peak layer picked after the run). A band that
  holds no layer of a small model falls back to the single layer nearest its centre.
- **measure**: for knockouts, the change in log-odds of the binary following probability,
  which equals the change in the follow - competitor logit difference and does not saturate
  on a confident model (I_NSSD, ``log p'_f / p_f``, is capped above by ``-log p_f``).
- **expect**: ``negative`` / ``positive`` (the CI must exclude 0 on that side and the
  estimate reach ``threshold``; *partly* from half of it: :func:`effect_verdict`), ``none`` (a null claim: every layer of the band has its CI
  within ``+-threshold``), ``above`` / ``below`` (a rate against ``threshold``).
- **bypass**: for a route claim, the edge that goes around the instruction tokens, read at its
  strongest layer at any depth (:func:`route_verdict`). A route is *not reproduced* when the
  bypass is stronger, and at most *partly* when the bypass comes within the threshold of it.
- **directions**: a claim covering both directions is *reproduced* only if both are and
  *partly* only if both are at least partly (:func:`combine_directions`).

Every chapter prints its rows of :data:`RULES` (:func:`table`) above its verdicts, and every
verdict row names its rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mfutils.engine.metrics import bootstrap_ci

#: The knockout measure: change in log-odds of the binary following probability.
LOG_ODDS = "Δ log-odds of binary p_follow (= Δ follow−competitor logit)"
#: Smallest knockout effect we call an effect: the odds of following change by about 28%.
EFFECT_THRESHOLD = 0.25
#: Fewest failures per direction for a claim about failed samples.
MIN_FAILURES = 30
#: Fewest failures for a rate on failed samples to be told apart from a constant reader.
MIN_FAILURES_FOR_CHANCE = 10
#: Behaviour targets an organism must meet to stand in for the paper's MLLMs (chapter 00,
#: :func:`mfutils.findings.behaviour.targets_met`): each direction and control on held-out items; the
#: paper's two sentences, held out of training; and at least MIN_PHRASINGS_MET unseen
#: sentences per direction, each followed at least TARGET_PHRASING of the time.
TARGET_HELDOUT = 0.95
TARGET_PAPER = 0.90
TARGET_PHRASING = 0.80
MIN_PHRASINGS_MET = 10
#: Seeds a training recipe is judged on before its seed-0 parts may ship (``mfutils.models.recipe_check``),
#: the targets above applied to their means. Written 2026-12-02, after seed 1 of the shipped recipe
#: missed its monitor by two items and one (seed 0: every group met; one seed's verdict at the
#: threshold is within the monitor's sampling error), and before any later candidate was trained.
RECIPE_SEEDS = (0, 1)

#: The verdict labels, grouped as the book reports them (front page, plain summaries, the
#: generated discussion), in the order they are listed.
AGREES = ("reproduced", "met")
PARTLY = ("partly",)
DISAGREES = ("not reproduced", "not met")
UNMEASURED = ("not measured", "not measurable")
VERDICT_ORDER = AGREES + PARTLY + DISAGREES + UNMEASURED

#: Thresholds of the anomaly rules that write each chapter's "What this run shows"
#: (:mod:`mfutils.book.discussion`), fixed before any run:
#: ``early_depth``: an effect, margin or head set below this relative depth is "at the first
#: layers" (the first quarter; the paper's routing band starts at 0.45);
#: ``chance_margin``: a rate this far below its constant-reader baseline is "below chance";
#: ``rise_tolerance``: a blocking curve that climbs this much (share of samples) above its lowest
#: point so far is "not monotonic";
#: ``artefact_repair``: removing or flipping the heads (α ≤ 0) that "repairs" this share of
#: failures is reported as an artefact (it never counts as a repair);
#: ``control_drop``: mean-ablating chapter 3's late MLPs lowers following or a single-modality
#: control by this share (the 05-general threshold; added 2026-12-06, before the run it reads;
#: descriptive, no verdict).
ANOMALY = {"early_depth": 0.25, "chance_margin": 0.05, "rise_tolerance": 0.05, "artefact_repair": 0.10,
           "control_drop": 0.10}
#: Below a rule's threshold, still "partly": a share of failures repaired at α = 2 of at least
#: this much (:func:`amplification_verdict`).
PARTLY_REPAIR = 0.10
#: Rule 04-fast: besides its Spearman threshold, the fast scorer must share this much of the
#: exhaustive top set and need at least this many times fewer forward-equivalent passes.
FAST_OVERLAP = 0.8
FAST_SPEEDUP = 10

DEEP = (0.5, 1.0)
LATE = (0.75, 1.0)
#: the paper's critical routing layers, 13-16 of 28, as relative depth
ROUTING_BAND = (0.45, 0.60)
ALL = (0.0, 1.0)


@dataclass(frozen=True)
class Rule:
    id: str
    chapter: str
    claim: str
    paper: str
    measure: str
    band: tuple[float, float]
    expect: str
    threshold: float
    control: str = "—"
    bypass: str = ""


RULES: tuple[Rule, ...] = (
    # chapter 01: knockouts (edge names as in mfutils.findings.routing.edge_name)
    Rule("01-vt-image", "01_shallow_routing", "Cutting Vision→Text hurts vision following",
         "I_NSSD −1.36 at layer 14/28", LOG_ODDS, ROUTING_BAND, "negative", EFFECT_THRESHOLD, "Vision→Last (rule 01-vl)"),
    Rule("01-vt-text", "01_shallow_routing", "… and helps text following (non-selective transfer)",
         "I_NSSD +0.39 at layer 14/28", LOG_ODDS, ROUTING_BAND, "positive", EFFECT_THRESHOLD, "Vision→Last (rule 01-vl)"),
    Rule("01-vl", "01_shallow_routing", "Cutting Vision→Last does nothing at any layer (both directions)",
         "≈ 0 at all 28 layers", LOG_ODDS, ALL, "none", EFFECT_THRESHOLD),
    Rule("01-tl", "01_shallow_routing", "Cutting Text→Last does nothing before the late layers (both directions)",
         "≈ 0; a dip of −0.09 only at layers 19–20/28", LOG_ODDS, (0.0, 0.65), "none", EFFECT_THRESHOLD),
    Rule("01-ti", "01_shallow_routing", "Text context is routed through the instruction",
         "I_NSSD −0.81 at layer 15/28; bypass within 0.11", LOG_ODDS, ROUTING_BAND, "negative", EFFECT_THRESHOLD,
         bypass="TextCtx -/-> Last"),
    Rule("01-vi", "01_shallow_routing", "Vision is routed through the instruction",
         "I_NSSD −0.58 at layer 14/28; bypass within 0.11", LOG_ODDS, ROUTING_BAND, "negative", EFFECT_THRESHOLD,
         bypass="Vision -/-> Last"),
    Rule("01-tc", "01_shallow_routing", "Control: cutting TextCtx into the constraint does nothing",
         "|I_NSSD| < 0.01", LOG_ODDS, ALL, "none", EFFECT_THRESHOLD),
    Rule("01-vc", "01_shallow_routing", "Control: cutting Vision into the constraint does nothing",
         "|I_NSSD| < 0.01", LOG_ODDS, ALL, "none", EFFECT_THRESHOLD),
    # (added 2026-12-06, before any run of it; issue 41) our hypothesis, not the paper's claim
    Rule("01-qf", "01_shallow_routing", "Query, then fetch: the last position reads the instruction before it "
         "fetches the cue (our hypothesis, not the paper's)", "— (the paper routes cues into the instruction instead)",
         "share of answers flipped when the instruction tokens / the last position take their residual stream from "
         "the same item under the opposite instruction, per layer", ALL, "above", 0.5,
         "the fetch: the layer where cutting the instructed cue's route into the last position (Vision→Last, "
         "TextCtx→Last) hurts most, at least by the effect threshold"),
    # chapter 02: logit lens and LDAR
    Rule("02-emerge", "02_deep_arbitration", "The margin is ≈ 0 early and appears only in deep layers",
         "≈ 0 to layer 18/28, +3.5 at 27/28",
         "depth of the first layer whose mean lens margin (last position) exceeds half the final one", DEEP, "inside",
         0.5, "bootstrap over samples of that depth"),
    Rule("02-ldar", "02_deep_arbitration", "LDAR at the instruction tokens > 95% in deep layers", "> 95%",
         "LDAR of the lens margin averaged over the instruction tokens", LATE, "above", 0.95,
         "a constant 'follow' reader; the balanced LDAR (mean of followed and failed) must beat 0.5"),
    Rule("02-attn", "02_deep_arbitration", "Deep attention writes the instructed answer",
         "undefined ('instruction-compliant subspace')", "attention's logit change to the margin, summed over the band",
         DEEP, "positive", EFFECT_THRESHOLD),
    # chapter 03: MLP inertia
    Rule("03-alike", "03_mlp_inertia", "On average MLPs lift both candidates alike", "+10.0 vs +9.9 at layer 27/28",
         "MLP logit change of each candidate, summed over the band; |f − c| ≤ threshold · max(|f|, |c|)", DEEP, "alike",
         0.25),
    Rule("03-fail-text", "03_mlp_inertia", "On failures (text following) MLPs push against the instruction",
         "−0.54 at layer 26/28", "MLP logit change to the margin on failed samples, summed over the band", LATE,
         "negative", EFFECT_THRESHOLD,
         f"attention in the band ≈ 0 (smaller than the MLPs); mean-ablating the band's MLPs must repair more failures "
         f"than it breaks successes; at least {MIN_FAILURES} failures"),
    Rule("03-fail-image", "03_mlp_inertia", "On failures (vision following) MLPs push against the instruction",
         "−1.00 at layer 25/28", "MLP logit change to the margin on failed samples, summed over the band", LATE,
         "negative", EFFECT_THRESHOLD,
         f"attention in the band ≈ 0 (smaller than the MLPs); mean-ablating the band's MLPs must repair more failures "
         f"than it breaks successes; at least {MIN_FAILURES} failures"),
    Rule("03-ablate", "03_mlp_inertia", "Mean-ablating the late MLPs raises following (our causal check)",
         "not reported", "paired change of the MF ratio, band's MLPs mean-ablated", LATE, "positive", 0.0,
         "the same ablation on image-only / text-only controls"),
    # chapter 04: heads
    Rule("04-sparse", "04_sparse_heads", "A few heads (~5%) carry arbitration", "≈ 39 of 784 heads (5%)",
         "share of the positive ablation effect on following carried by the top 5% of heads, per direction", ALL,
         "above", 0.30, "uniform heads would carry 5%"),
    Rule("04-specific", "04_sparse_heads", "The top heads are specific to arbitration",
         "general abilities kept when blocked",
         "share of the top 5% heads (per direction) whose ablation lowers following more than it lowers the matched "
         "single-modality control, by more than twice the noise, both measured exactly", ALL, "above", 0.5,
         "image-only / text-only controls with the same answer pair"),
    Rule("04-depth", "04_sparse_heads", "Arbitration heads sit in the middle-to-deep layers", "middle to deep layers",
         "median relative depth of the arbitration heads (the chapter-05 set)", (0.4, 1.0), "inside", 0.0),
    Rule("04-fast", "04_sparse_heads", "A fast scorer finds the same heads (our target)", "—",
         "Spearman and top-5% overlap with exhaustive ablation over heads above noise, per direction; "
         "forward-equivalent passes", ALL, "above", 0.9, "exhaustive single-head ablation; overlap ≥ 80%, ≥ 10× fewer passes"),
    # chapter 05: interventions on the arbitration heads (chosen by rule 04-specific on chapter 04's conflicts)
    Rule("05-block", "05_causal_interventions", "Blocking the arbitration heads (~5%) cuts the MF ratio",
         "~60% relative drop", "relative drop of the MF ratio, per direction (both needed)", ALL, "above", 0.30,
         "≥ 50 random head sets of the same size from the same layers: the blocked ratio's 95% Wilson interval "
         "below their 2.5th percentile (partly from half the threshold)"),
    Rule("05-general", "05_causal_interventions", "General ability (image-only, text-only) survives the blocking",
         "preserved (benchmarks unnamed)", "drop of control accuracy", ALL, "below", 0.10),
    Rule("05-amplify", "05_causal_interventions", "Amplifying the heads repairs failed samples", "up to ~60%",
         "share of failures repaired at α = 2 (fixed in advance; α ≤ 1 never counts), per direction (both needed)",
         ALL, "above", 0.40,
         "≥ 30 failures per direction; α = 2 minus α = 1 and minus α = 0 (removal), paired intervals above 0; "
         "< 5% of successes broken; partly from 10%"),
)

#: the paper's relative drop of the MF ratio when its ~5% arbitration heads are blocked (rule
#: 05-block's paper column; chapter 5's figure marks it, no verdict reads it)
PAPER_BLOCK_DROP = 0.60

#: the amplification factor the verdict reads (others are shown, never chosen from)
VERDICT_ALPHA = 2.0


def rule(rule_id: str) -> Rule:
    for r in RULES:
        if r.id == rule_id:
            return r
    raise KeyError(f"no rule {rule_id!r}")


def table(chapter: str) -> pd.DataFrame:
    """The chapter's rows of :data:`RULES`, for display above its verdicts."""
    rows = []
    for r in RULES:
        if r.chapter == chapter:
            d = asdict(r)
            rows.append({"rule": d["id"], "claim": d["claim"], "measure": d["measure"],
                         "band (relative depth)": f"{r.band[0]:.2f}–{r.band[1]:.2f}",
                         "expect": _expect_text(r), "control / bypass": r.bypass and f"bypass {r.bypass}" or r.control})
    return pd.DataFrame(rows)


def _expect_text(r: Rule) -> str:
    return {"negative": f"CI < 0 and ≤ −{r.threshold:g} (partly: ≤ −{r.threshold / 2:g})",
            "positive": f"CI > 0 and ≥ {r.threshold:g}" + (f" (partly: ≥ {r.threshold / 2:g})" if r.threshold else ""),
            "none": f"every layer's CI within ±{r.threshold:g}", "above": f"≥ {r.threshold:g}",
            "below": f"< {r.threshold:g}", "inside": "inside the band", "alike": f"|f − c| ≤ {r.threshold:g}·max"}[r.expect]


def depth(layer, n_layers: int):
    """Relative depth of a layer (or array of layers): ``(layer + 0.5) / n_layers``."""
    return (np.asarray(layer) + 0.5) / n_layers


def band_layers(band: tuple[float, float], n_layers: int) -> list[int]:
    """Layers whose relative depth lies in ``band``; the layer nearest its centre if none does."""
    d = depth(np.arange(n_layers), n_layers)
    inside = [int(l) for l in np.flatnonzero((d >= band[0] - 1e-9) & (d <= band[1] + 1e-9))]
    return inside or [int(np.argmin(np.abs(d - (band[0] + band[1]) / 2)))]


def band_mean(per_sample: pd.DataFrame, layers: list[int], value: str, key: str = "uid") -> pd.Series:
    """Per-sample mean of ``value`` over ``layers`` (long rows with ``layer`` and ``key`` columns)."""
    sel = per_sample[per_sample["layer"].isin(layers)]
    return sel.groupby(key, sort=True)[value].mean()


def band_statistic(values, n_boot: int = 500, seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, low, high)``: mean of per-sample band values and its 95% bootstrap CI."""
    return bootstrap_ci(np.asarray(values, dtype=float), n_boot=n_boot, seed=seed)


def null_claim(r: Rule, layer_cis: list[tuple[float, float, float]]) -> str:
    """Verdict of a claim that an effect is ≈ 0 over the band: *reproduced* when every layer's
    CI lies within ``±threshold``, *partly* when every layer's estimate does."""
    if all(-r.threshold < lo and hi < r.threshold for _, lo, hi in layer_cis):
        return "reproduced"
    if all(abs(est) < r.threshold for est, _, _ in layer_cis):
        return "partly"
    return "not reproduced"


def verdict_row(r: Rule, ours: str, verdict: str, **extra) -> dict:
    """One verdict row: claim, paper, ours, rule, verdict (plus chapter-specific fields)."""
    return {"claim": r.claim, "paper": r.paper, "ours": ours, "rule": r.id, "verdict": verdict, **extra}


def fmt_ci(est: float, lo: float, hi: float, digits: int = 2) -> str:
    return f"{est:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


# ---------------------------------------------------------------------------------------------
# Rules of 2026-12-06 (issue 40: verdicts a sceptic would sign), written and committed (a26cfa7)
# before any chapter was re-executed under them; IN FORCE from the re-execution that followed.
# They replace ``directional`` (significant alone made "partly"), ``route_claim`` (bypass read
# inside the band only) and ``combine`` (one direction's "partly" carried a claim), and the
# chapters' own head and blocking rules. Each closes a gap an audit of the executed book
# found: significant but negligible effects called "partly", a bypass judged only inside the
# routing band, one direction's "partly" carrying a two-direction claim, unmeasured heads
# passing a specificity test, five random head sets standing for a distribution, amplification
# judged on six failures against no removal contrast, and measures at their ceiling.
# ---------------------------------------------------------------------------------------------

#: Fewest random head sets per fraction for a percentile band (the 2.5th percentile of five
#: draws is their minimum).
MIN_RANDOM_DRAWS = 50
#: The most successes an intervention may break (share) for a repair to count.
MAX_BROKEN = 0.05
#: Disjoint selection splits a head set is chosen on, to show how much it depends on its split.
STABILITY_SPLITS = 3
#: Verdict words of the new rules beside the old: a measure pinned at its bound says so.
AT_CEILING = "at ceiling"
AT_FLOOR = "at floor"


def effect_verdict(r: Rule, est: float, lo: float, hi: float) -> str:
    """A signed effect claim under the minimum-effect rule: *reproduced* needs the interval
    beyond zero in the paper's direction **and** the estimate at or beyond the threshold;
    *partly* the interval beyond zero and at least half the threshold; anything smaller is
    *not reproduced*, however small its p-value (16 confident samples make −0.03 log-odds
    significant against a threshold of 0.25)."""
    if r.expect not in ("negative", "positive"):
        raise ValueError(f"rule {r.id} is not a signed claim")
    sign = -1.0 if r.expect == "negative" else 1.0
    beyond_zero = hi < 0 if sign < 0 else lo > 0
    size = sign * est
    if beyond_zero and size >= r.threshold:
        return "reproduced"
    if beyond_zero and size >= r.threshold / 2:
        return "partly"
    return "not reproduced"


def effect_text(stat: tuple[float, float, float], threshold: float, n: int) -> str:
    """A verdict row's effect: estimate, 95% interval, the threshold it is judged against and n."""
    return f"{fmt_ci(*stat)} (threshold ±{threshold:g}, n = {n})"


def strongest_layer(per_layer: dict[int, float], expect: str) -> tuple[int, float]:
    """``(layer, estimate)`` of the strongest effect in the claim's direction at any depth."""
    pick = min if expect == "negative" else max
    layer = pick(sorted(per_layer), key=lambda l: per_layer[l])
    return layer, per_layer[layer]


def route_verdict(r: Rule, route: tuple[float, float, float], bypass_per_layer: dict[int, float],
                  n_layers: int) -> tuple[str, str]:
    """A route claim against its bypass **at any depth**: the route's band effect (``route``:
    estimate and 95% interval) is judged by :func:`effect_verdict`, then capped at *not
    reproduced* when the bypass's strongest single-layer effect anywhere is stronger than the
    route's band effect, and at *partly* when it is within the threshold of it. Returns the
    verdict and a note naming the bypass's strongest layer and depth."""
    verdict = effect_verdict(r, *route)
    layer, bypass = strongest_layer(bypass_per_layer, r.expect)
    sign = -1.0 if r.expect == "negative" else 1.0
    note = f"bypass {r.bypass} strongest at layer {layer} (depth {float(depth(layer, n_layers)):.2f}): {bypass:+.2f}"
    if sign * bypass > sign * route[0]:
        return "not reproduced", note + ", stronger than the route"
    if verdict == "reproduced" and sign * (route[0] - bypass) < r.threshold:
        return "partly", note + ", within the threshold of the route"
    return verdict, note


def combine_directions(verdicts: dict[str, str]) -> tuple[str, str]:
    """One verdict for a claim covering several directions: *not measurable* if any direction
    is; else *reproduced* only if every direction is, *partly* only if every direction is at
    least *partly*, else *not reproduced*. Returns the
    verdict and a note naming each direction that is not at least *partly* (empty when none)."""
    if not verdicts:
        raise ValueError("a claim needs at least one direction")
    # (wired 2026-12-06, before the run it judged) a direction that cannot be measured makes the
    # claim not measurable, never "not reproduced"
    unmeasurable = [d for d, v in verdicts.items() if v == "not measurable"]
    if unmeasurable:
        return "not measurable", "not measurable in " + ", ".join(unmeasurable)
    values = list(verdicts.values())
    if all(v == "reproduced" for v in values):
        verdict = "reproduced"
    elif all(v in ("reproduced", "partly") for v in values):
        verdict = "partly"
    else:
        verdict = "not reproduced"
    none = [d for d, v in verdicts.items() if v not in ("reproduced", "partly")]
    # (2026-12-06, wording only) "not reproduced in X", not "no effect in X": a direction fails
    # its rule also when it has an effect too small, or one its control matches
    return verdict, ("not reproduced in " + ", ".join(none)) if none else ""


def measured_arbitration_heads(follow: np.ndarray, follow_se: np.ndarray, control: np.ndarray,
                               control_se: np.ndarray) -> np.ndarray:
    """Which heads are *arbitration heads*: the exactly measured ablation drop on follow items
    exceeds the drop on control items by more than twice the difference's standard error. A
    head without an exact measurement (a ``nan`` standard error on either side, as for every
    head only the fast scorer estimated) is never one: no estimate stands in for a measurement.
    All arrays ``(L, H)``; returns a boolean ``(L, H)``."""
    follow, control = np.asarray(follow, float), np.asarray(control, float)
    se = np.sqrt(np.asarray(follow_se, float) ** 2 + np.asarray(control_se, float) ** 2)
    measured = np.isfinite(se) & np.isfinite(follow) & np.isfinite(control)
    out = np.zeros(follow.shape, dtype=bool)
    out[measured] = (follow - control)[measured] > 2 * se[measured]
    return out


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float, float]:
    """``(k / n, low, high)``: a share and its 95% Wilson score interval."""
    if n <= 0:
        raise ValueError("a share needs n > 0")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at k = 0 or k = n a bound equals the share exactly; rounding can leave it 1e-16 inside (n = 128)
    return p, 0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half)


def random_band(ratios) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the following ratio under random same-layer head
    sets; refuses fewer than :data:`MIN_RANDOM_DRAWS` draws."""
    ratios = np.asarray(ratios, float)
    if len(ratios) < MIN_RANDOM_DRAWS:
        raise ValueError(f"{len(ratios)} random head sets: a percentile band needs at least {MIN_RANDOM_DRAWS}")
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def blocking_direction(r: Rule, clean: float, blocked_k: int, n: int, random_ratios) -> tuple[str, str]:
    """One direction of the blocking claim: the blocked ratio (``blocked_k`` of ``n`` followed)
    with its Wilson interval must lie below the random sets' band (interval's top under the
    band's 2.5th percentile) and its relative drop from ``clean`` reach the threshold for
    *reproduced*; below the band with at least half the threshold is *partly*."""
    ratio, lo, hi = wilson(blocked_k, n)
    band_lo, band_hi = random_band(random_ratios)
    drop = (clean - ratio) / clean if clean > 0 else 0.0
    note = (f"blocked {ratio:.2f} [{lo:.2f}, {hi:.2f}] of n = {n}; random sets {band_lo:.2f}–{band_hi:.2f} "
            f"({len(np.asarray(random_ratios))} draws); drop {drop:.0%}")
    below = hi < band_lo
    if below and drop >= r.threshold:
        return "reproduced", note
    if below and drop >= r.threshold / 2:
        return "partly", note
    return "not reproduced", note


FAILURE_TYPES = ("misread instruction", "other")


def failure_type(answer: str, answer_under_opposite: str) -> str:
    """A failure is a *misread instruction* when the model gives the answer it gives under the
    opposite instruction (it followed the other modality as if told to); otherwise *other*."""
    return FAILURE_TYPES[0] if answer.strip().lower() == answer_under_opposite.strip().lower() else FAILURE_TYPES[1]


def failures_measurable(n_failures: int) -> bool:
    """A claim about failed samples is judged only on at least :data:`MIN_FAILURES` of them."""
    return n_failures >= MIN_FAILURES


def amplification_verdict(r: Rule, repaired: dict[float, np.ndarray], broken_k: int, n_successes: int,
                          n_boot: int = 1000, seed: int = 0) -> tuple[str, str]:
    """Amplification at α = :data:`VERDICT_ALPHA` against the clean pass (α = 1) and removal
    (α = 0), on the same failures. ``repaired[alpha]``: per failure, 1 if the instructed answer
    is given, else 0 (the same failures in the same order for every α). *Reproduced* needs at
    least :data:`MIN_FAILURES` failures, the paired difference α = 2 minus each of α = 1 and
    α = 0 with its bootstrap interval above zero, the repaired share at the threshold, and
    fewer than :data:`MAX_BROKEN` of ``n_successes`` broken; *partly* the same with the share at
    :data:`PARTLY_REPAIR`; fewer failures: *not measurable*."""
    amp = np.asarray(repaired[VERDICT_ALPHA], float)
    n = len(amp)
    if not failures_measurable(n):
        return "not measurable", f"{n} failures (at least {MIN_FAILURES} needed)"
    diffs = {a: bootstrap_ci(amp - np.asarray(repaired[a], float), n_boot=n_boot, seed=seed) for a in (1.0, 0.0)}
    broke = broken_k / n_successes if n_successes else 0.0
    share = float(amp.mean())
    note = (f"repaired {share:.0%} of {n} failures at α = {VERDICT_ALPHA:g}; "
            + "; ".join(f"minus α = {a:g}: {fmt_ci(*d)}" for a, d in diffs.items())
            + f"; broke {broke:.1%} of {n_successes} successes")
    beats = all(d[1] > 0 for d in diffs.values()) and broke < MAX_BROKEN
    if beats and share >= r.threshold:
        return "reproduced", note
    if beats and share >= PARTLY_REPAIR:
        return "partly", note
    return "not reproduced", note


def jaccard(a, b) -> float:
    """Overlap of two head sets: |a ∩ b| / |a ∪ b| (1 for two empty sets)."""
    a, b = set(map(tuple, a)), set(map(tuple, b))
    return 1.0 if not a | b else len(a & b) / len(a | b)


def bound_note(before: float, after: float, ceiling: float = 1.0, floor: float = 0.0) -> str:
    """:data:`AT_CEILING` / :data:`AT_FLOOR` when a measure sits at its bound before and after
    (a control the model never misses cannot show that it survived), else empty."""
    if before >= ceiling and after >= ceiling:
        return AT_CEILING
    if before <= floor and after <= floor:
        return AT_FLOOR
    return ""



# ---------------------------------------------------------------------------------------------
# Stability of the chosen head set (issue 40), written 2026-12-06 before any run it judges.
# The pre-registered selection is chapter 4's conflicts, all of them: the book's verdicts are
# its. Beside it, the same selection is repeated on STABILITY_SPLITS disjoint parts of those
# conflicts (:func:`selection_splits`, each with its matched controls), each part scored as the
# whole set is (fast scorer on the part's own samples, its shortlist and every head a verdict
# reads measured exactly on the part), and each part's head set judged by rule 05-block on
# chapter 5's evaluation conflicts with its own >= MIN_RANDOM_DRAWS random same-layer sets.
# Reported: each set's size, its Jaccard overlap with the pre-registered set and with the other
# parts, and its 05-block verdict. No part's verdict replaces the pre-registered one.
# ---------------------------------------------------------------------------------------------


def selection_splits(n: int, k: int = STABILITY_SPLITS) -> list[np.ndarray]:
    """``k`` disjoint, contiguous index ranges covering ``range(n)`` (sizes differ by at most
    one); refuses a part with fewer than 3 samples (no standard error worth the name)."""
    if n < 3 * k:
        raise ValueError(f"{n} samples cannot make {k} selection splits of at least 3")
    return np.array_split(np.arange(n), k)


def stability_table(preregistered, split_sets: list) -> pd.DataFrame:
    """One row per selection split: its head count, Jaccard with the pre-registered set and the
    mean Jaccard with the other splits. ``split_sets``: head lists, one per split."""
    rows = []
    for j, heads in enumerate(split_sets):
        others = [jaccard(heads, o) for i, o in enumerate(split_sets) if i != j]
        rows.append({"split": j + 1, "heads": len(heads), "jaccard with pre-registered": jaccard(heads, preregistered),
                     "mean jaccard with other splits": float(np.mean(others)) if others else float("nan")})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Rule 01-qf, "query, then fetch" (issue 41), written 2026-12-06 before any run of it. Our
# hypothesis, not the paper's: the last position first reads *which* modality the instruction
# names, then fetches the cue of that modality. Tested by activation patching across
# instructions (mfutils.findings.patching): at layer l, the residual stream entering l at the
# instruction tokens (or at the last position) is replaced by the same item's under the
# opposite instruction. Per direction:
# - the instruction tokens *decide* at layer l when that patch flips at least QF_FLIP of the
#   answers; they are *read* by the first layer from which they never decide again;
# - the last position *carries* the instruction from the first layer at which its patch flips
#   at least QF_FLIP of the answers;
# - the *fetch* is the layer where the instructed cue's knockout into the last position
#   (Vision→Last for image following, TextCtx→Last for text) is strongest, and it must reach
#   -EFFECT_THRESHOLD in log-odds.
# Met: the instruction tokens decide at some layer below the fetch, the last position carries
# the instruction at or below the fetch, and the instruction tokens are read by the fetch.
# Partly: the last position carries it by the fetch but the instruction tokens still decide
# after it. Otherwise not met; a direction without a fetch is not met (nothing is fetched).
# ---------------------------------------------------------------------------------------------

#: a paper curve whose largest |I_NSSD| stays under this is drawn and described as flat (≈ 0)
PAPER_FLAT = 0.05
#: rules that judge our own hypotheses, not the paper's claims: a chapter's summary never
#: counts their verdicts as agreeing or disagreeing with the paper
OWN_HYPOTHESES = ("01-qf",)
#: share of answers a patch must flip to count as deciding (rule 01-qf)
QF_FLIP = 0.5


def query_then_fetch(instruction_flips: dict[int, float], last_flips: dict[int, float], fetch: tuple[int, float],
                     n_layers: int) -> tuple[str, str]:
    """Rule 01-qf for one direction. ``instruction_flips`` / ``last_flips``: layer -> share of
    answers flipped by patching that site from the opposite instruction's run; ``fetch``:
    ``(layer, Δ log-odds)`` of the instructed cue's strongest knockout into the last position.
    Returns ``(verdict, note)``: *met*, *partly* or *not met*."""
    def d(l):
        return f"{l} (depth {float(depth(l, n_layers)):.2f})"

    deciding = sorted(l for l, f in instruction_flips.items() if f >= QF_FLIP)
    read_by = (max(deciding) + 1) if deciding else None
    carried = min((l for l, f in last_flips.items() if f >= QF_FLIP), default=None)
    f_layer, f_effect = fetch
    n = len(deciding)
    parts = [f"instruction tokens decide at {n} layer{'' if n == 1 else 's'}" + (f", read by layer {d(read_by)}" if deciding else ""),
             "last position carries the instruction " + (f"from layer {d(carried)}" if carried is not None else "at no layer"),
             f"fetch at layer {d(f_layer)} ({f_effect:+.2f})"]
    note = "; ".join(parts)
    if f_effect > -EFFECT_THRESHOLD:
        return "not met", note + ": no fetch reaches the threshold"
    if not deciding or min(deciding) >= f_layer or carried is None or carried > f_layer:
        return "not met", note
    return ("met" if read_by <= f_layer else "partly"), note


def combine_met(verdicts: dict[str, str]) -> tuple[str, str]:
    """:func:`combine_directions` for a claim judged met / partly / not met."""
    values = list(verdicts.values())
    verdict = "met" if all(v == "met" for v in values) else "partly" if all(v in ("met", "partly") for v in values) \
        else "not met"
    none = [k for k, v in verdicts.items() if v == "not met"]
    return verdict, ("not met in " + ", ".join(none)) if none else ""


# -- whether a finding holds in a model (2026-12-06, before the Gemma organism's first run) --------
#
# The front page's "What changes between the two families" says per finding whether it holds in
# both pretrained organisms, one or neither. The finding's paper claims decide (our own targets and
# hypotheses, 04-fast and 01-qf, do not); chapter 0's baseline has no paper claims: its targets
# decide there. A claim that could not be measured (not measurable, not run) counts for nothing.

#: claims that are the book's own, not the paper's: a target (04-fast) and a hypothesis (01-qf)
OWN_CLAIMS = ("04-fast",) + OWN_HYPOTHESES

def finding_holds(verdicts: list[str]) -> str:
    """*holds* (every measured claim reproduced or met, and none unmeasured), *in part* (some
    measured claim reproduced, met or partly), *does not hold* (claims measured, none of them
    showing the effect) or *not measured* (no claim measured), from one finding's verdicts."""
    measured = [v for v in verdicts if v in AGREES + PARTLY + DISAGREES]
    if not measured:
        return "not measured"
    if len(measured) == len(verdicts) and all(v in AGREES for v in measured):
        return "holds"
    if any(v in AGREES + PARTLY for v in measured):
        return "in part"
    return "does not hold"


def between_families(states: dict[str, str]) -> str:
    """One phrase comparing :func:`finding_holds`' states of two or more models (name -> state):
    "holds in both", "in part in both", "holds in neither", or which model it holds in."""
    values = set(states.values())
    if len(values) == 1:
        state = values.pop()
        return {"holds": "holds in both", "in part": "in part in both", "does not hold": "holds in neither",
                "not measured": "measured in neither", "not run": "run in neither"}.get(state, f"{state} in both")
    held = [m for m, s in states.items() if s == "holds"]
    if len(held) == 1:
        return f"holds in {held[0]} only"
    return "; ".join(f"{s} in {m}" for m, s in states.items())
