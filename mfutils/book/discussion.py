""""What this run shows": each chapter's closing discussion, generated from its own results.

Prose written before a run cannot discuss its numbers. This module writes the discussion
after: what agrees with the paper and what does not (from the verdict table), anomalies found
by fixed rules (:data:`mfutils.findings.rules.ANOMALY` holds their thresholds), and what would decide
the question on a real model (the chapter's registry entry). Every sentence is conditioned on
the measurements passed in, so the text stays true when the chapter is re-executed with other
parameters or on another model.

Detectors take the tables the chapters already compute and return sentences (Markdown):

- :func:`early_effects`: knockout effects whose largest layer lies in the first quarter of depth;
- :func:`below_chance`: an LDAR read that does worse than the constant "follow" reader;
- :func:`early_margin`: a lens margin that appears in the first quarter of depth;
- :func:`early_heads`: arbitration heads all in the first quarter of depth;
- :func:`non_monotonic`: a blocking curve that falls and then rises again;
- :func:`negative_alpha_repairs`: removal or sign-flip (α ≤ 0) repairing more than α = 2;
- :func:`ablation_harms`: mean-ablating the late MLPs lowers following or a single-modality control.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfutils.findings import rules



def verdict_paragraphs(verdict: pd.DataFrame) -> list[str]:
    """What agrees with the paper, what partly does, what does not, and what could not be
    measured; then our own hypotheses (:data:`mfutils.findings.rules.OWN_HYPOTHESES`), apart."""
    out = []
    if "rule" in verdict.columns:
        own = verdict[verdict["rule"].isin(rules.OWN_HYPOTHESES)]
        verdict = verdict[~verdict["rule"].isin(rules.OWN_HYPOTHESES)]
    else:
        own = verdict.iloc[0:0]
    for labels, lead in ((rules.AGREES, "**Agrees with the paper.**"),
                         (rules.PARTLY, "**Agrees in direction, not in size or contrast.**"),
                         (rules.DISAGREES, "**Does not agree.**"), (rules.UNMEASURED, "**Could not be measured.**")):
        rows = verdict[verdict["verdict"].isin(labels)]
        if len(rows):
            items = "\n".join(f"- {r['claim'].rstrip('.')} (ours: {r['ours']})" for _, r in rows.iterrows())
            out.append(f"{lead}\n\n{items}")
    if len(own):
        items = "\n".join(f"- {r['claim'].rstrip('.')}: *{r['verdict']}* (ours: {r['ours']})" for _, r in own.iterrows())
        out.append(f"**Our own hypothesis, beyond the paper.**\n\n{items}")
    return out


def early_effects(curve: pd.DataFrame, value: str = "log_odds") -> list[str]:
    """Edges whose largest |effect| (≥ the rules' effect threshold) sits in the first quarter of depth."""
    out = []
    early = rules.ANOMALY["early_depth"]
    for (edge, target), g in curve.groupby(["edge", "target"], sort=True):
        peak = g.loc[g[value].abs().idxmax()]
        if abs(peak[value]) >= rules.EFFECT_THRESHOLD and peak["depth"] < early:
            out.append(f"{edge} ({target} following) has its largest effect ({peak[value]:+.2f}) at relative depth "
                       f"{peak['depth']:.2f}")
    if not out:
        return []
    return ["**Effects at the first layers.** " + "; ".join(out) + f". The paper's routing effects peak at depth "
            f"{rules.ROUTING_BAND[0]:.2f}–{rules.ROUTING_BAND[1]:.2f}; this model does its routing (or deciding) in its first "
            "layers instead."]


def below_chance(ldar: pd.DataFrame, n_layers: int) -> list[str]:
    """LDAR reads (mean over the instruction tokens, all samples) below the constant reader in the late band."""
    band = rules.band_layers(rules.rule("02-ldar").band, n_layers)
    out = []
    d = ldar[(ldar["read"] == "mean") & (ldar["outcome"] == "all") & ldar["layer"].isin(band)]
    for target, g in d.groupby("target", sort=True):
        mean, chance = float(g["ldar"].mean()), float(g["chance"].iloc[0])
        if mean < chance - rules.ANOMALY["chance_margin"]:
            out.append(f"{target} following: LDAR {mean:.2f} against {chance:.2f} for a reader that always says \"follow\"")
    bal = ldar[(ldar["read"] == "mean") & ldar["layer"].isin(band)].groupby("target")["balanced"].mean().dropna()
    out += [f"{t} following: balanced LDAR {v:.2f}, below the 0.50 of any constant reader" for t, v in bal.items()
            if v < 0.5 - rules.ANOMALY["chance_margin"]]
    if not out:
        return []
    return ["**Below chance.** " + "; ".join(out) + ". Read at the instruction tokens, the lens predicts the model's "
            "answer less often than a reader that ignores them and always says \"follow\": in this model's late layers "
            "the instruction tokens do not carry the decision in the lens's basis."]


def early_margin(emerge: dict, n_layers: int) -> list[str]:
    """Lens margins that pass half their final value in the first quarter of depth."""
    early = [(t, l) for t, l in emerge.items() if l is not None and not pd.isna(l)
             and rules.depth(int(l), n_layers) < rules.ANOMALY["early_depth"]]
    if not early:
        return []
    where = "; ".join(f"{t} following at layer {int(l)} (depth {float(rules.depth(int(l), n_layers)):.2f})" for t, l in early)
    return [f"**The decision is legible at once.** The last position's lens margin passes half its final value early: "
            f"{where}. On Qwen2.5-VL-7B it stays near zero until about depth 0.65."]


def early_heads(heads: list, n_layers: int) -> list[str]:
    """Arbitration heads that all sit in the first quarter of depth."""
    if not heads:
        return []
    depths = [float(rules.depth(l, n_layers)) for l, _ in heads]
    if max(depths) >= rules.ANOMALY["early_depth"]:
        return []
    layers = sorted({int(l) for l, _ in heads})
    return [f"**The heads sit at the bottom.** All {len(heads)} arbitration heads are in layers {layers} "
            f"(relative depth ≤ {max(depths):.2f}), not in the deep layers where the paper places arbitration."]


def split_sentence(stability: pd.DataFrame) -> str:
    """One sentence on the selection splits (:func:`mfutils.findings.causal.split_blocking`'s
    table): how many heads each chose, their overlap with the pre-registered set, and how many
    splits reach each 05-block verdict."""
    if stability.empty:
        return ""
    sizes = ", ".join(f"{int(r.heads)}" for r in stability.itertuples())
    counts = stability["verdict"].value_counts()
    verdicts = "; ".join(f"*{v}* on {n} of {len(stability)}" for v, n in counts.items())
    return (f"The {len(stability)} disjoint splits chose {sizes} heads, with Jaccard overlap "
            f"{stability['jaccard with pre-registered'].min():.2f}–{stability['jaccard with pre-registered'].max():.2f} "
            f"with the pre-registered set and {stability['mean jaccard with other splits'].mean():.2f} on average "
            f"between splits. Rule 05-block on their sets: {verdicts}.")


def how_it_arbitrates(model: str, route: pd.DataFrame, pcurve: pd.DataFrame | None, n_layers: int,
                      marks: pd.DataFrame | None = None, top: int = 5) -> str:
    """"How this model arbitrates" (issue 41), generated from chapter 1's numbers: where the
    instruction is read (activation patching across instructions), where the instructed cue is
    fetched (its strongest knockout into the last position), through which edges (the cuts that
    move the log-odds most), next to the paper's picture (its strongest points on the same
    edges, ``marks``). ``route``: :func:`mfutils.findings.routing.route_map`; ``pcurve``:
    :func:`mfutils.findings.patching.patch_curves` (None: not run)."""
    from mfutils.findings.patching import FETCH_EDGE

    def at(layer: int) -> str:
        return f"layer {layer} (depth {float(rules.depth(layer, n_layers)):.2f})"

    def arrow(edge: str) -> str:
        return edge.replace(" -/-> ", "→")

    parts = []
    if pcurve is not None and len(pcurve):
        read = []
        for target in ("image", "text"):
            p = pcurve[pcurve["target"] == target]
            ins = p[(p["site"] == "instruction") & (p["flipped"] >= rules.QF_FLIP)]["layer"]
            last = p[(p["site"] == "last") & (p["flipped"] >= rules.QF_FLIP)]["layer"]
            read.append(f"following the {target}, the instruction tokens decide the answer "
                        + (f"up to {at(int(ins.max()))}" if len(ins) else "at no layer")
                        + ", the last position " + (f"from {at(int(last.min()))}" if len(last) else "at no layer"))
        parts.append("*Where the instruction is read* (a residual stream taken from the same item under the opposite "
                     f"instruction flips at least {rules.QF_FLIP:.0%} of the answers): " + "; ".join(read) + ".")
    fetch = []
    for target, edge in FETCH_EDGE.items():
        c = route[(route["edge"] == edge) & (route["target"] == target)]
        if len(c):
            row = c.loc[c["log_odds"].idxmin()]
            fetch.append(f"cutting {arrow(edge)} hurts {target} following most at {at(int(row['layer']))}, "
                         f"{row['log_odds']:+.2f} log-odds")
    if fetch:
        parts.append("*Where the cue is fetched*: " + "; ".join(fetch) + ".")
    big = route[route["log_odds"] <= -rules.EFFECT_THRESHOLD]
    if len(big):
        peaks = big.loc[big.groupby(["edge", "target"])["log_odds"].idxmin()].sort_values("log_odds").head(top)
        parts.append("*Through which edges* (the cuts that hurt following most, at their strongest layer): "
                     + "; ".join(f"{arrow(r.edge)} ({r.target}) {r.log_odds:+.2f} at depth {r.depth:.2f}"
                                 for r in peaks.itertuples()) + ".")
    else:
        parts.append(f"*Through which edges*: no cut moves the log-odds by {rules.EFFECT_THRESHOLD} or more.")
    text = f"**How the {model} arbitrates.** " + " ".join(parts)
    if marks is not None and len(marks):
        strongest = marks.loc[marks.groupby("edge")["value"].apply(lambda v: v.abs().idxmax())].sort_values("depth")
        flat = strongest["value"].abs() < rules.PAPER_FLAT
        text += (" *The paper's picture* (Qwen2.5-VL-7B, I_NSSD at its strongest layer): "
                 + "; ".join(f"{arrow(r.edge)} {r.value:+.2f} at depth {r.depth:.2f}" for r in strongest[~flat].itertuples())
                 + ("; " + ", ".join(arrow(e) for e in strongest[flat]["edge"]) + f" ≈ 0 at every depth (|I_NSSD| < {rules.PAPER_FLAT:g})"
                    if flat.any() else "")
                 + ": cues reach the instruction tokens near the middle of the depth, and the last position barely "
                   "reads the image directly.")
    return text


def non_monotonic(summary: pd.DataFrame, measure_prefix: str = "MF") -> list[str]:
    """Blocking curves (top heads) that fall and then rise again by at least the rules' tolerance."""
    out = []
    tol = rules.ANOMALY["rise_tolerance"]
    for m, g in summary[summary["measure"].str.startswith(measure_prefix)].groupby("measure", sort=True):
        g = g.sort_values("fraction")
        ys = [float(g["baseline"].iloc[0])] + g["top"].astype(float).tolist()
        xs = [0.0] + g["fraction"].astype(float).tolist()
        if any(ys[j] - min(ys[:j]) > tol for j in range(1, len(ys))):
            path = " → ".join(f"{y:.2f}" for y in ys)
            out.append(f"{m} ({path} at {', '.join(f'{x:.0%}' for x in xs)} of heads blocked)")
    if not out:
        return []
    return ["**Not monotonic.** Following rises again as more heads are blocked: " + "; ".join(out) + ". The heads' "
            "effects do not add up along the ranking; one reading is that the larger sets also remove heads that pushed "
            "against the instruction. The 5% verdict reads one point of this curve."]


def negative_alpha_repairs(amp: pd.DataFrame) -> list[str]:
    """Removal or a sign flip (α ≤ 0) that "repairs" at least ``ANOMALY["artefact_repair"]`` of failures."""
    if amp is None or not len(amp):
        return []
    neg = amp[(amp["alpha"] <= 0) & (amp["n_failed"] > 0) & (amp["repaired"] >= rules.ANOMALY["artefact_repair"])]
    if not len(neg):
        return []
    at = amp[np.isclose(amp["alpha"], rules.VERDICT_ALPHA)]
    where = (lambda r: f" ({r['target']} following)") if "target" in amp else (lambda r: "")
    ref = (", against " + ", ".join(f"{r['repaired']:.0%}{where(r)}" for _, r in at.iterrows())
           + f" at the verdict's α = {rules.VERDICT_ALPHA:g}") if len(at) else ""
    which = "; ".join(f"α = {r['alpha']:g} turns {r['repaired']:.0%} of failures{where(r)} into the instructed answer while "
                      f"breaking {r['broken']:.0%} of successes" for _, r in neg.iterrows())
    return [f"**An artefact, not a repair.** {which}{ref}. Removing or flipping the heads is not amplification, and "
            "α ≤ 0 never counts as a repair in the verdict; that removal changes failed answers at all suggests these "
            "heads push against the instruction on them."]


def what_this_run_shows(chapter: str, verdict: pd.DataFrame, anomalies: list[str] | None, model_id: str) -> str:
    """The chapter's closing section body (Markdown): verdicts, anomalies, what would decide it.

    ``anomalies``: the sentences of the detectors that apply to the chapter (empty: none fired;
    ``None``: no detector applies to it)."""
    from mfutils.book.chapters import entry

    paras = [f"*Generated from this run's results ({model_id}); re-executing the chapter rewrites it.*"]
    paras += verdict_paragraphs(verdict)
    if anomalies is not None:
        paras += anomalies or ["**Anomalies.** None of the anomaly rules that apply to this chapter fires on this run."]
    paras.append(f"**What would decide it on a real model.** {entry(chapter).decide}")
    from mfutils.book.tables import plain

    return plain("\n\n".join(paras))  # result-file names reach the reader as words


def ablation_harms(effect: pd.DataFrame, controls: pd.DataFrame) -> list[str]:
    """Chapter 3's causal check read the other way: mean-ablating the late MLPs lowers the MF
    ratio, or a single-modality control's accuracy, by at least ``ANOMALY["control_drop"]``.
    ``effect``: :func:`mfutils.findings.inertia.ablation_effect`; ``controls``: rows
    ``(measure, clean, ablated)``."""
    drop = rules.ANOMALY["control_drop"]
    parts = [f"{r['target']} following {r['MF clean']:.0%} → {r['MF ablated']:.0%}" for _, r in effect.iterrows()
             if r["MF clean"] - r["MF ablated"] >= drop]
    from mfutils.book.tables import plain

    parts += [f"{plain(r['measure'])} answers {r['clean']:.0%} → {r['ablated']:.0%}" for _, r in controls.iterrows()
              if r["clean"] - r["ablated"] >= drop]
    if not parts:
        return []
    return ["**What the late MLPs do instead.** Mean-ablating them lowers " + "; ".join(parts) + ": here the late "
            "MLPs help write the answer itself, including answers from one modality alone, rather than resisting "
            "the instruction."]
