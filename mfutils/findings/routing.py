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
               "instruction": "Instruction", "constraint": "Constraint", "question": "Question", "neutral": "Neutral",
               "template": "Template"}
#: Beyond the paper (issue 41), descriptive, no verdict: every token group into the last
#: position, so that a route the paper does not draw (the last position reading a cue or the
#: instruction directly) is seen. ``template``: the chat template's own tokens.
LAST_EDGES = [(g, "last") for g in ("vision", "text_context", "instruction", "question", "constraint", "template")]
#: The routes into the instruction also swept at a wide window (``RoutingSpec.wide_window``): a
#: route spread over many layers can vanish when a narrow window cuts only a few of them.
WIDE_EDGES = [("text_context", "instruction"), ("vision", "instruction")]


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
        "stability.csv", "stability.parquet", "sweep.csv", "sweep.parquet", "route_map.csv", "route_map.png",
        "window_sensitivity.csv", "window_sensitivity.parquet", "position_log_odds.csv", "position_log_odds.parquet",
        "patching.csv", "patching.png", "patching_samples.csv", "patching_samples.parquet",
    )
    n_samples: int = 16
    window: int = 3
    layout_controls: bool = True
    #: conflicts per direction the position controls run on: the first of the kept ones (they
    #: carry no verdict; on the pretrained organism they cost more than the main sweep)
    layout_samples: int = 8
    saliency: bool = True
    n_boot: int = 500
    #: the window of :data:`WIDE_EDGES`' second sweep (9 of the pretrained organism's 30 layers:
    #: about 0.3 of the depth); 0 skips it
    wide_window: int = 9
    #: activation patching across instructions at every layer (rule 01-qf, our hypothesis)
    patching: bool = True

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


#: the paper's curves each route-map edge is drawn beside (figure, series as the paper names it)
PAPER_ROUTE_SERIES = {"A1": {"Vision -/-> Text": "Vision -/-> Text", "Vision -/-> Last": "Vision -/-> Last",
                             "Text -/-> Last": "Text -/-> Last"},
                      "A2": {"TextCtx -/-> Instruction": "TextCtx -/-> Instruction", "TextCtx -/-> Last": "TextCtx -/-> Last",
                             "Vision -/-> Instruction": "Vision -/-> Instruction",
                             "Vision -/-> Text Context": "Vision -/-> TextCtx"}}
PAPER_DIRECTION = {"Vision Following": "image", "Text Following": "text"}


def route_map(curve: pd.DataFrame) -> pd.DataFrame:
    """Every swept edge's mean Δ log-odds per (target, edge, layer) with its interval, ordered
    for the map: edges into the last position first, then into the instruction, then the rest."""
    keep = ["target", "edge", "layer", "depth", "n", "log_odds", "log_odds_ci_low", "log_odds_ci_high"]
    order = {e: i for i, e in enumerate(dict.fromkeys(edge_name(*e) for e in LAST_EDGES + FIGURE3_EDGES + FIGURE2_EDGES
                                                      + CONTROL_EDGES))}
    out = curve[keep].copy()
    out["order"] = out["edge"].map(order).fillna(len(order))
    return out.sort_values(["target", "order", "layer"]).drop(columns="order").reset_index(drop=True)


def last_edge_rows(sweep: pd.DataFrame, curve: pd.DataFrame, n_layers: int, n_boot: int = 500,
                   seed: int = 0) -> pd.DataFrame:
    """Descriptive rows (no claim, no verdict) for :data:`LAST_EDGES`: per edge and direction,
    the band statistic over the routing band (per-sample mean over its layers, bootstrap 95%
    interval, as the verdicts' rows) and the strongest layer anywhere with its interval."""
    eff = effect_measures(sweep)
    band = rules.band_layers(rules.ROUTING_BAND, n_layers)
    rows = []
    for source, target_group in LAST_EDGES:
        edge = edge_name(source, target_group)
        for target in ("image", "text"):
            e = eff[(eff["edge"] == edge) & (eff["target"] == target)]
            if e.empty:
                continue
            stat = rules.band_statistic(rules.band_mean(e, band, "log_odds"), n_boot, seed)
            c = curve[(curve["edge"] == edge) & (curve["target"] == target)]
            peak = c.loc[c["log_odds"].abs().idxmax()]
            rows.append({"edge": edge.replace(" -/-> ", "→"), "direction": target,
                         "routing band (0.45–0.60)": rules.fmt_ci(*stat),
                         "strongest layer": int(peak["layer"]), "depth": float(peak["depth"]),
                         "strongest Δ log-odds": rules.fmt_ci(peak["log_odds"], peak["log_odds_ci_low"],
                                                              peak["log_odds_ci_high"]),
                         "n": int(e["uid"].nunique())})
    return pd.DataFrame(rows)


def paper_route_marks(reference: pd.DataFrame) -> pd.DataFrame:
    """Where the paper's curve for each route-map edge is strongest: per (target, edge) the
    relative depth and value (its unit, I_NSSD) of the paper's largest |value|. ``reference``:
    :func:`mfutils.findings.reference.paper_curves` of Qwen2.5-VL-7B."""
    rows = []
    for figure, series in PAPER_ROUTE_SERIES.items():
        ref = reference[reference["figure"] == figure]
        for (direction, name), g in ref.groupby(["direction", "series"]):
            if name not in series or direction not in PAPER_DIRECTION:
                continue
            peak = g.loc[g["value"].abs().idxmax()]
            rows.append({"target": PAPER_DIRECTION[direction], "edge": series[name], "depth": float(peak["depth"]),
                         "value": float(peak["value"]), "metric": peak["metric"], "figure": figure})
    return pd.DataFrame(rows)


def strongest(curve: pd.DataFrame, edge: str, target: str) -> tuple[int, float, float]:
    """``(layer, depth, Δ log-odds)`` of an edge's most negative mean effect in one direction."""
    c = curve[(curve["edge"] == edge) & (curve["target"] == target)]
    row = c.loc[c["log_odds"].idxmin()]
    return int(row["layer"]), float(row["depth"]), float(row["log_odds"])


def window_sensitivity(narrow: pd.DataFrame, wide: pd.DataFrame, narrow_window: int, wide_window: int,
                       n_layers: int) -> pd.DataFrame:
    """:data:`WIDE_EDGES` at both windows, each in the direction its rule reads (text following
    for TextCtx→Instruction, image for Vision→Instruction): the strongest layer and effect and
    the mean over the routing band. ``narrow`` / ``wide``: :func:`curves` of each sweep."""
    band = rules.band_layers(rules.ROUTING_BAND, n_layers)
    rows = []
    for source, target_group in WIDE_EDGES:
        edge = edge_name(source, target_group)
        target = "text" if source == "text_context" else "image"
        for window, c in ((narrow_window, narrow), (wide_window, wide)):
            layer, d, value = strongest(c, edge, target)
            inside = c[(c["edge"] == edge) & (c["target"] == target) & c["layer"].isin(band)]["log_odds"]
            rows.append({"edge": edge.replace(" -/-> ", "→"), "direction": target, "window (layers)": window,
                         "strongest layer": layer, "depth": d, "strongest Δ log-odds": value,
                         "mean Δ in the routing band": float(inside.mean())})
    return pd.DataFrame(rows)


def layout_log_odds(sweep: pd.DataFrame, layout_curve: pd.DataFrame, uids, n_layers: int, n_boot: int,
                    seed: int) -> pd.DataFrame:
    """The position controls in the verdict measure: per layout (the paper's included, from the
    main sweep on the same samples), edge of :data:`POSITION_EDGES` and direction, the strongest
    mean Δ log-odds and its layer."""
    names = [edge_name(*e) for e in POSITION_EDGES]
    paper = curves(sweep[sweep["uid"].isin(set(uids)) & sweep["edge"].isin(names)], n_layers, n_boot, seed).assign(layout="paper")
    both = pd.concat([paper, layout_curve], ignore_index=True)
    rows = []
    for (layout, edge, target), g in both.groupby(["layout", "edge", "target"], sort=False):
        if (edge.startswith("TextCtx") and target != "text") or (edge.startswith("Vision") and target != "image"):
            continue  # each cue in the direction that follows it
        peak = g.loc[g["log_odds"].idxmin()]
        rows.append({"layout": layout, "edge": edge, "target": target, "layer": int(peak["layer"]),
                     "depth": float(peak["depth"]), "log_odds": float(peak["log_odds"]),
                     "log_odds_ci_low": float(peak["log_odds_ci_low"]), "log_odds_ci_high": float(peak["log_odds_ci_high"])})
    return pd.DataFrame(rows)


#: what each layout moves: the instruction after the constraint swaps the two sentences' places;
#: the neutral sentence after the instruction moves the constraint away from it
LAYOUT_MOVES = {"instruction_after_constraint": "the instruction now comes after the constraint",
                "neutral_after_instruction": "a neutral sentence now separates the instruction from the question"}


def carrier(table: pd.DataFrame, layout: str, cue: str) -> tuple[str, float]:
    """Which of the instruction and the constraint the cue's strongest flow goes into under
    ``layout`` (``("none", value)`` when neither reaches the effect threshold)."""
    rows = table[(table["layout"] == layout) & table["edge"].str.startswith(GROUP_LABEL[cue] + " ")]
    if rows.empty:
        return "none", float("nan")
    best = rows.loc[rows["log_odds"].idxmin()]
    if best["log_odds"] > -rules.EFFECT_THRESHOLD:
        return "none", float(best["log_odds"])
    return best["edge"].split(" -/-> ")[1].lower(), float(best["log_odds"])


def position_sentences(table: pd.DataFrame) -> list[str]:
    """Per cue and layout, one sentence (descriptive, no verdict): does the cue's strongest flow
    into the instruction or the constraint stay with the same sentence (it follows the role)
    or move with the place (it follows the position)? Each flow is named with its numbers."""
    out = []
    for cue, target in (("text_context", "text"), ("vision", "image")):
        if not table["edge"].str.startswith(GROUP_LABEL[cue] + " ").any():
            continue
        base, _ = carrier(table, "paper", cue)
        for layout, moved in LAYOUT_MOVES.items():
            if layout not in set(table["layout"]):
                continue
            now, _ = carrier(table, layout, cue)
            rows = table[(table["target"] == target) & table["edge"].str.startswith(GROUP_LABEL[cue] + " ")
                         & table["layout"].isin(["paper", layout])]
            numbers = "; ".join(f"{r.edge.replace(' -/-> ', '→')} {r.log_odds:+.2f} at layer {r.layer} "
                                f"({'paper layout' if r.layout == 'paper' else 'moved'})" for r in rows.itertuples())
            if base == "none" and now == "none":
                verdict = "no flow into either sentence reaches the effect threshold, so it cannot tell"
            elif base == now:
                verdict = f"the strongest flow stays into the {now}: it follows the sentence's role"
            elif layout == "instruction_after_constraint" and "none" not in (base, now):
                verdict = (f"the strongest flow moves from the {base} to the {now}, the sentence now in that place: "
                           "it follows the position, not the role")
            elif now == "none":
                verdict = f"the strongest flow went into the {base}; moved, no flow reaches the effect threshold"
            elif base == "none":
                verdict = f"no flow reaches the effect threshold in the paper's layout; moved, the strongest goes into the {now}"
            else:
                verdict = f"the strongest flow moves from the {base} to the {now}"
            out.append(f"**{GROUP_LABEL[cue]}, {moved}** ({plain_direction(target)}): {verdict} ({numbers}).")
    return out


def plain_direction(target: str) -> str:
    return "image following" if target == "image" else "text following"
