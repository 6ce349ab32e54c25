"""Chapter 01: shallow routing into the instruction tokens, by attention knockout.

For an edge ``source -/-> target`` and a layer ``l``, attention from the target group's
positions to the source group's positions is blocked in a window of layers centred on ``l``
(Geva et al. 2023; paper-notes.md "Methods"), in one forward pass, and the change in the
answer is measured. The clean run is computed once per batch and reused for every edge and
layer.

**Verdict measure.** Verdicts read the change in log-odds of the binary following
probability, ``logit(p'_f) - logit(p_f)``, which equals the change in the follow - competitor
logit difference. It does not saturate: on a confident model (median clean p_f 0.998 on the
tiny organism) I_NSSD cannot exceed ``-log p_f`` (about 0.002), so a helpful cut could never
be called an effect, while the log-odds change is unbounded both ways. The pre-registered
rules are in :mod:`mfutils.findings.rules`.

**Our I_NSSD**, kept beside it for comparison with the paper's curves. The paper's formula is
not public. We define, per sample,

    I_NSSD = log( p'_f / p_f ),   p_f = P(follow) / (P(follow) + P(competitor)),

the log-ratio of the *binary* following probability after (p') and before (p) the knockout,
averaged over samples. It is signed (negative = following hurt), zero when nothing changes,
unbounded below and bounded above by -log p_f -- the asymmetry of the paper's curves
(-1.36 / -5.2 at worst, +0.39 at best). :func:`effect_measures` also computes the other
candidates from the notes (signed binary KL, change in log-odds) and the measure without
the binary constraint (full-vocabulary p_f), which the chapter compares.
"""

from __future__ import annotations

import typing

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mfutils.engine.encoding import batches, encode
from mfutils.engine.interventions import knockout, knockout_mask
from mfutils.engine.metrics import answer_tokens, bootstrap_ci, forward_last_logits, readout
from mfutils.findings import rules
from mfutils.runs.params import RunSpec

#: The paper's edges (Figure 2 and Figure 3a), as (source, target) token groups.
FIGURE2_EDGES = [("vision", "text"), ("vision", "last"), ("text", "last")]
FIGURE3_EDGES = [("text_context", "instruction"), ("text_context", "last"), ("vision", "instruction"),
                 ("vision", "text_context"), ("vision", "last")]
#: Controls: cutting cues into the constraint sentence should do nothing.
CONTROL_EDGES = [("text_context", "constraint"), ("vision", "constraint")]

GROUP_LABEL = {"vision": "Vision", "text": "Text", "last": "Last", "text_context": "TextCtx",
               "instruction": "Instruction", "constraint": "Constraint", "question": "Question", "neutral": "Neutral"}


def edge_name(source: str, target: str) -> str:
    return f"{GROUP_LABEL[source]} -/-> {GROUP_LABEL[target]}"


@dataclass(frozen=True)
class RoutingSpec(RunSpec):
    chapter: str = "01_shallow_routing"
    #: the files a finished run holds (:meth:`mfutils.runs.results.RunWriter.finish` refuses to finish without them)
    OUTPUTS: typing.ClassVar[tuple[str, ...]] = (
        "curves.csv", "curves.parquet", "figure2_coarse.csv", "figure2_coarse.png", "figure3_anchors.csv",
        "figure3_anchors.png", "figure3_unconstrained.csv", "figure3_unconstrained.png", "log_odds_effects.csv",
        "log_odds_effects.png", "position_instruction_after_constraint.csv",
        "position_instruction_after_constraint.png", "position_neutral_after_instruction.csv",
        "position_neutral_after_instruction.png", "results.json", "saliency_flow.csv", "saliency_flow.png",
        "stability.csv", "stability.parquet", "sweep.csv", "sweep.parquet",
    )
    n_samples: int = 16
    window: int = 3
    layout_controls: bool = True
    #: conflicts per direction the position controls run on: the first of the kept ones (they
    #: carry no verdict; on the pretrained organism they cost more than the main sweep)
    layout_samples: int = 8
    saliency: bool = True
    n_boot: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layout_samples < 2:
            from mfutils.runs.params import ParameterError

            raise ParameterError(f"layout_samples must be at least 2 (a bootstrap band needs two), got {self.layout_samples}")


def window_layers(centre: int, window: int, n_layers: int) -> list[int]:
    """Layers ``[centre - window//2, centre + window//2]`` clipped to the model."""
    half = window // 2
    return [l for l in range(centre - half, centre + half + 1) if 0 <= l < n_layers]


@torch.no_grad()
def knockout_sweep(bundle, items, edges, window: int, batch_size: int, layout: str = "paper",
                   engine: str = "incremental", work: dict | None = None) -> pd.DataFrame:
    """Per sample, edge and layer: binary and full p_follow before and after the knockout.

    Returns long rows ``(uid, target, edge, layer, p_bin, p_bin_ko, p_full, p_full_ko, p_comp_full,
    p_comp_full_ko, ld, ld_ko)``; ``ld`` is the follow - competitor logit difference (the
    binary distribution's log-odds, kept unclipped so that the verdict measure never saturates).

    ``engine="incremental"`` (:mod:`mfutils.engine.incremental`) recomputes each knockout only from the
    window's first layer, and each sample only from its own first position in the target group
    to its own last token (:func:`mfutils.engine.incremental.own_suffix_logits`); ``"naive"`` reruns the whole
    model (``n_batches x (1 + len(edges) x n_layers)`` full passes). Both give the same numbers
    within float tolerance (tested). ``work``, if given, accumulates the forward-equivalents
    each engine spends: ``{"naive": ..., "incremental": ...}`` in full passes per sample; and,
    per edge, ``work["by_edge"][edge] = {"incremental": ..., "per-sample floor": ...}``: what the
    engine spends (each sample's suffix padded to the batch's longest) and the floor, each
    sample's suffix alone without padding: the least any exact recomputation of that edge,
    layer by layer, can spend on this prompt layout.
    """
    from mfutils.engine import incremental

    if engine not in ("incremental", "naive"):
        raise ValueError(f"engine must be 'incremental' or 'naive', got {engine!r}")
    ad = bundle.adapter
    rows = []
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk, layout).to(bundle.device, bundle.dtype)
        answers = [answer_tokens(bundle.tokenizer, it) for it in chunk]
        T = batch.inputs["input_ids"].shape[1]
        if engine == "incremental":
            run = incremental.clean_run(bundle, batch)
            clean = readout(run.logits, answers)
        else:
            clean = readout(forward_last_logits(bundle.model, batch.inputs, batch.lengths), answers)
        n = len(chunk)
        if work is not None:
            work["naive"] = work.get("naive", 0.0) + n * (1 + len(edges) * ad.n_layers)
            work["incremental"] = work.get("incremental", 0.0) + n
        for source, target in edges:
            block = knockout_mask(batch.spans, source, target, T).to(bundle.device)
            starts = incremental.own_starts(batch.spans, batch.lengths, target)
            width = int((batch.lengths - starts).max())  # the packed suffix's columns
            cut = incremental.own_block(block, run, starts) if engine == "incremental" else None
            empty = not bool(block.any())  # the group is absent from this layout: nothing to cut
            for layer in range(ad.n_layers):
                layers = window_layers(layer, window, ad.n_layers)
                if empty and engine == "incremental":
                    ko = clean
                elif engine == "incremental":
                    with knockout(ad, layers, cut):
                        ko = readout(incremental.own_suffix_logits(bundle, run, min(layers), starts), answers)
                else:
                    with knockout(ad, layers, block):
                        ko = readout(forward_last_logits(bundle.model, batch.inputs, batch.lengths), answers)
                if work is not None and not empty:
                    spent = n * incremental.forward_share(ad.n_layers, T, min(layers), T - width)
                    work["incremental"] += spent
                    # in the same unit, a pass over the padded batch's T positions
                    floor = sum(incremental.forward_share(ad.n_layers, T, min(layers), T - int(n_b - s_b))
                                for s_b, n_b in zip(starts, batch.lengths))
                    edge = work.setdefault("by_edge", {}).setdefault(
                        edge_name(source, target), {"incremental": 0.0, "per-sample floor": 0.0})
                    edge["incremental"] += spent
                    edge["per-sample floor"] += floor
                for b, it in enumerate(chunk):
                    rows.append((it.uid, it.target, edge_name(source, target), layer,
                                 float(clean.binary[b]), float(ko.binary[b]), float(clean.p_follow[b]),
                                 float(ko.p_follow[b]), float(clean.p_comp[b]), float(ko.p_comp[b]),
                                 float(clean.logit_diff[b]), float(ko.logit_diff[b])))
    return pd.DataFrame(rows, columns=["uid", "target", "edge", "layer", "p_bin", "p_bin_ko", "p_full", "p_full_ko",
                                       "p_comp_full", "p_comp_full_ko", "ld", "ld_ko"])


def effect_measures(df: pd.DataFrame) -> pd.DataFrame:
    """Add per-sample effect columns: the verdict measure (``log_odds``, from the unclipped
    logit differences), our I_NSSD and the other candidates."""
    eps = 1e-12
    p, q = df["p_bin"].clip(eps, 1 - eps), df["p_bin_ko"].clip(eps, 1 - eps)
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    return df.assign(
        i_nssd=np.log(q / p),
        signed_kl=np.sign(q - p) * kl,
        log_odds=df["ld_ko"] - df["ld"],
        unconstrained=np.log(df["p_full_ko"].clip(eps) / df["p_full"].clip(eps)),
    )


MEASURES = ("i_nssd", "signed_kl", "log_odds", "unconstrained")


def i_nssd_cap(df: pd.DataFrame) -> pd.Series:
    """Largest mean I_NSSD a knockout could reach on these samples, per direction:
    ``mean(-log p_f)`` (a knockout that makes every sample certain to follow). The log-odds
    change has no such cap."""
    clean = df.drop_duplicates("uid")
    return (-np.log(clean["p_bin"].clip(1e-12))).groupby(clean["target"]).mean()


def curves(df: pd.DataFrame, n_layers: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Mean effect per (target, edge, layer), with 95% bootstrap CIs for the verdict measure
    (``log_odds_ci_low/high``) and for I_NSSD (``ci_low/high``)."""
    df = effect_measures(df)
    out = []
    for (target, edge, layer), g in df.groupby(["target", "edge", "layer"], sort=True):
        est, lo, hi = bootstrap_ci(g["i_nssd"], n_boot=n_boot, seed=seed)
        lo_est, lo_lo, lo_hi = bootstrap_ci(g["log_odds"], n_boot=n_boot, seed=seed)
        row = {"target": target, "edge": edge, "layer": layer, "depth": float(rules.depth(layer, n_layers)),
               "n": len(g), "i_nssd": est, "ci_low": lo, "ci_high": hi,
               "log_odds": lo_est, "log_odds_ci_low": lo_lo, "log_odds_ci_high": lo_hi}
        row.update({m: float(g[m].mean()) for m in MEASURES if m not in row})
        out.append(row)
    return pd.DataFrame(out)


def measure_agreement(curve: pd.DataFrame) -> pd.DataFrame:
    """How the candidate definitions agree with ours: sign agreement and Pearson r over all points."""
    rows = []
    for m in MEASURES[1:]:
        a, b = curve["i_nssd"].to_numpy(), curve[m].to_numpy()
        big = np.abs(a) > 0.01
        rows.append({"measure": m, "pearson_r": float(np.corrcoef(a, b)[0, 1]) if a.std() and b.std() else float("nan"),
                     "sign_agreement (|I_NSSD| > 0.01)": float((np.sign(a[big]) == np.sign(b[big])).mean()) if big.any() else float("nan")})
    return pd.DataFrame(rows)


def constraint_control(curve: pd.DataFrame) -> pd.DataFrame:
    """Largest |effect| of cutting each cue into the constraint sentence (:data:`CONTROL_EDGES`),
    per edge and direction: one row each, the log-odds change and I_NSSD."""
    ctrl = curve[curve["edge"].isin([edge_name(*e) for e in CONTROL_EDGES])]
    return ctrl.groupby(["edge", "target"]).agg(**{
        "max |Δ log-odds|": ("log_odds", lambda s: s.abs().max()),
        "max |I_NSSD|": ("i_nssd", lambda s: s.abs().max())}).reset_index()


#: the edges whose subsample stability the chapter shows (the three routes of Figure 3)
STABILITY_EDGES = [("vision", "text"), ("text_context", "instruction"), ("vision", "instruction")]


def stability_by_fraction(stability: pd.DataFrame) -> pd.DataFrame:
    """``subsample_stability``'s Pearson r for :data:`STABILITY_EDGES`: one row per (edge,
    direction), one column per fraction of samples kept."""
    keep = stability[stability["edge"].isin([edge_name(*e) for e in STABILITY_EDGES])]
    return keep.pivot_table(index=["edge", "target"], columns="fraction", values="pearson_r_with_full")


def subsample_stability(df: pd.DataFrame, fractions=(0.2, 0.4, 0.6, 0.8, 1.0), seed: int = 0) -> pd.DataFrame:
    """Curves of the verdict measure (log-odds change) recomputed on random subsets of samples
    (no new forward passes): Pearson r with the full curve and the most negative layer, per
    edge and direction."""
    df = effect_measures(df)
    full = df.groupby(["target", "edge", "layer"])["log_odds"].mean()
    uids = np.array(sorted(df["uid"].unique()))
    rng = np.random.default_rng(seed)
    rows = []
    for frac in fractions:
        keep = set(rng.choice(uids, size=max(2, int(round(frac * len(uids)))), replace=False))
        sub = df[df["uid"].isin(keep)].groupby(["target", "edge", "layer"])["log_odds"].mean()
        for (target, edge), s in sub.groupby(level=[0, 1]):
            f = full.loc[(target, edge)]
            s = s.droplevel([0, 1])
            r = float(np.corrcoef(s, f)[0, 1]) if s.std() > 0 and f.std() > 0 else float("nan")
            rows.append({"fraction": frac, "target": target, "edge": edge, "pearson_r_with_full": r,
                         "peak_layer": int(s.idxmin()), "peak_value": float(s.min())})
    return pd.DataFrame(rows)


def saliency(bundle, items, pairs: list[tuple[str, str]], batch_size: int) -> pd.DataFrame:
    """|attention x gradient| flow per layer between token groups (Label Words are Anchors).

    The differentiated quantity is the following-minus-competitor logit difference at the
    last position; per layer, ``|sum_h A * dm/dA|`` is *averaged* over the edge's (target,
    source) position pairs inside the attention hook, as *Label Words are Anchors* does, so a
    group's flow does not grow with its size. Returns rows ``(uid, target, pair, layer, flow)``.
    """
    from mfutils.engine.interventions import saliency_flow

    ad = bundle.adapter
    rows = []
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
        answers = [answer_tokens(bundle.tokenizer, it) for it in chunk]
        T = batch.inputs["input_ids"].shape[1]

        def mask(group):
            m = torch.zeros(len(chunk), T, dtype=torch.bool)
            for b, sp in enumerate(batch.spans):
                m[b, sp[group]] = True
            return m.to(bundle.device)

        named = [(edge_name(s, t), mask(t), mask(s)) for s, t in pairs]
        with torch.enable_grad(), saliency_flow(ad, named) as store:
            r = readout(forward_last_logits(bundle.model, batch.inputs, batch.lengths), answers)
            r.logit_diff.sum().backward()
        bundle.model.zero_grad(set_to_none=True)
        for name, per_layer in store.items():
            for layer, flow in per_layer.items():
                for b, it in enumerate(chunk):
                    rows.append((it.uid, it.target, name, layer, float(flow[b])))
    return pd.DataFrame(rows, columns=["uid", "target", "pair", "layer", "flow"])


#: each chapter-01 rule's knockout edge and the directions it is judged on
RULE_EDGES = {
    "01-vt-image": ("Vision -/-> Text", ("image",)),
    "01-vt-text": ("Vision -/-> Text", ("text",)),
    "01-vl": ("Vision -/-> Last", ("image", "text")),
    "01-tl": ("Text -/-> Last", ("image", "text")),
    "01-ti": ("TextCtx -/-> Instruction", ("text",)),
    "01-vi": ("Vision -/-> Instruction", ("image",)),
    "01-tc": ("TextCtx -/-> Constraint", ("text",)),
    "01-vc": ("Vision -/-> Constraint", ("image",)),
}


def verdicts(sweep: pd.DataFrame, curve: pd.DataFrame, n_layers: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Every chapter-01 rule of :data:`mfutils.findings.rules.RULES`, judged on the log-odds change.

    Signed and route claims use the bootstrap CI of the per-sample band mean (never a peak
    layer) under the minimum-effect rule (:func:`mfutils.findings.rules.effect_verdict`);
    route claims are weighed against their bypass's strongest layer at any depth
    (:func:`mfutils.findings.rules.route_verdict`); null claims need every layer of their
    band inside the threshold, in every direction they cover.
    """
    eff = effect_measures(sweep)
    rows = []
    for rule_id, (edge, targets) in RULE_EDGES.items():
        r = rules.rule(rule_id)
        layers = rules.band_layers(r.band, n_layers)
        where = f"layers {layers[0]}–{layers[-1]} of 0–{n_layers - 1}" if len(layers) > 1 else f"layer {layers[0]} of 0–{n_layers - 1}"
        e = eff[eff["edge"] == edge]
        if e.empty:
            rows.append(rules.verdict_row(r, "not measured", "not measured"))
            continue
        if r.expect == "none":
            parts, verdicts_ = [], []
            for t in targets:
                c = curve[(curve["edge"] == edge) & (curve["target"] == t) & curve["layer"].isin(layers)]
                cis = list(zip(c["log_odds"], c["log_odds_ci_low"], c["log_odds_ci_high"]))
                verdicts_.append(rules.null_claim(r, cis))
                worst = c.loc[c["log_odds"].abs().idxmax()]
                parts.append(f"{t}: largest |Δ| {abs(worst['log_odds']):.2f} "
                             f"[{worst['log_odds_ci_low']:+.2f}, {worst['log_odds_ci_high']:+.2f}] at layer {int(worst['layer'])}")
            # a null claim holds only as far as its weakest direction
            verdict, _ = rules.combine_directions(dict(zip(targets, verdicts_)))
            rows.append(rules.verdict_row(r, "; ".join(parts) + f" ({where})", verdict))
            continue
        t = targets[0]
        route = rules.band_mean(e[e["target"] == t], layers, "log_odds")
        stat = rules.band_statistic(route, n_boot, seed)
        ours = rules.effect_text(stat, r.threshold, len(route)) + f" over {where}"
        if r.bypass:
            by = curve[(curve["edge"] == r.bypass) & (curve["target"] == t)]
            if by.empty:  # a route claim is never judged without its bypass
                rows.append(rules.verdict_row(r, ours + f"; bypass {r.bypass} not measured", "not measured"))
                continue
            # rule of 2026-12-06: the bypass is weighed at its strongest layer anywhere, not only in the band
            verdict, note = rules.route_verdict(r, stat, dict(zip(by["layer"].astype(int), by["log_odds"])), n_layers)
            ours += "; " + note.replace(" -/-> ", "→")
        else:
            verdict = rules.effect_verdict(r, *stat)
        rows.append(rules.verdict_row(r, ours, verdict))
    return pd.DataFrame(rows)


#: the position-control layouts (:data:`mfutils.data.prompts.LAYOUTS`) and the paper's figure for each
LAYOUT_FIGURES = {"instruction_after_constraint": "A8", "neutral_after_instruction": "A9"}
#: the edges the position controls cut: cues into the instruction and into the constraint
POSITION_EDGES = [("text_context", "instruction"), ("text_context", "constraint"), ("vision", "instruction"),
                  ("vision", "constraint")]


def first_per_direction(items, n: int) -> list:
    """The first ``n`` items of each instruction target, in their order."""
    seen: dict[str, int] = {}
    out = []
    for it in items:
        if seen.get(it.target, 0) < n:
            seen[it.target] = seen.get(it.target, 0) + 1
            out.append(it)
    return out


def position_controls(bundle, items, window: int, batch_size: int, n_boot: int, seed: int):
    """The paper's position controls: per layout of :data:`LAYOUT_FIGURES`, the following
    ratio per direction and the knockout curves of :data:`POSITION_EDGES` (the chapter passes
    :func:`first_per_direction`'s ``layout_samples`` conflicts).

    Returns ``(mf, curve)``: one row per layout (``MF image``, ``MF text``), and
    :func:`curves` rows with a ``layout`` column.
    """
    from mfutils.findings.evaluation import run_readouts

    L = bundle.adapter.n_layers
    mf, rows = [], []
    for layout in LAYOUT_FIGURES:
        t = run_readouts(bundle, items, batch_size, layout=layout)
        mf.append({"layout": layout, **{f"MF {k}": float((g["decision"] == 1).mean()) for k, g in t.groupby("target")}})
        sweep = knockout_sweep(bundle, items, POSITION_EDGES, window, batch_size, layout=layout)
        rows.append(curves(sweep, L, n_boot, seed).assign(layout=layout))
    return pd.DataFrame(mf), pd.concat(rows, ignore_index=True)


def saliency_shares(flow: pd.DataFrame) -> pd.DataFrame:
    """:func:`saliency`'s per-sample flows averaged per (target, pair, layer), with each pair's
    ``share`` of the layer's summed flow (the five pairs' shares add up to 1 per layer)."""
    mean = flow.groupby(["target", "pair", "layer"])["flow"].mean().reset_index()
    mean["share"] = mean["flow"] / mean.groupby(["target", "layer"])["flow"].transform("sum")
    return mean
