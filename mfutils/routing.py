"""Chapter 01: shallow routing into the instruction tokens, by attention knockout.

For an edge ``source -/-> target`` and a layer ``l``, attention from the target group's
positions to the source group's positions is blocked in a window of layers centred on ``l``
(Geva et al. 2023; paper-notes.md "Methods"), in one forward pass, and the change in the
answer is measured. The clean run is computed once per batch and reused for every edge and
layer.

**Our I_NSSD.** The paper's formula is not public. We define, per sample,

    I_NSSD = log( p'_f / p_f ),   p_f = P(follow) / (P(follow) + P(competitor)),

the log-ratio of the *binary* following probability after (p') and before (p) the knockout,
averaged over samples. It is signed (negative = following hurt), zero when nothing changes,
unbounded below and bounded above by -log p_f -- the asymmetry of the paper's curves
(-1.36 / -5.2 at worst, +0.39 at best). :func:`effect_measures` also computes the other
candidates from the notes (signed binary KL, change in log-odds) and the measure without
the binary constraint (full-vocabulary p_f), which the chapter compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .encoding import batches, encode
from .interventions import knockout, knockout_mask
from .metrics import answer_tokens, bootstrap_ci, last_logits, readout
from .params import RunSpec

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
    n_samples: int = 96
    window: int = 1
    layout_controls: bool = True
    saliency: bool = True
    n_boot: int = 500


def window_layers(centre: int, window: int, n_layers: int) -> list[int]:
    """Layers ``[centre - window//2, centre + window//2]`` clipped to the model."""
    half = window // 2
    return [l for l in range(centre - half, centre + half + 1) if 0 <= l < n_layers]


def _binary_follow(r) -> tuple[torch.Tensor, torch.Tensor]:
    return r.binary, r.p_follow


@torch.no_grad()
def knockout_sweep(bundle, items, edges, window: int, batch_size: int, layout: str = "paper") -> pd.DataFrame:
    """Per sample, edge and layer: binary and full p_follow before and after the knockout.

    Returns long rows ``(uid, target, edge, layer, p_bin, p_bin_ko, p_full, p_full_ko, p_comp_full, p_comp_full_ko)``.
    Forward passes: ``n_batches x (1 + len(edges) x n_layers)``.
    """
    ad = bundle.adapter
    rows = []
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk, layout).to(bundle.device, bundle.dtype)
        answers = [answer_tokens(bundle.tokenizer, it) for it in chunk]
        clean = readout(last_logits(bundle.model(**batch.inputs), batch.lengths), answers)
        T = batch.inputs["input_ids"].shape[1]
        for source, target in edges:
            block = knockout_mask(batch.spans, source, target, T).to(bundle.device)
            for layer in range(ad.n_layers):
                with knockout(ad, window_layers(layer, window, ad.n_layers), block):
                    ko = readout(last_logits(bundle.model(**batch.inputs), batch.lengths), answers)
                for b, it in enumerate(chunk):
                    rows.append((it.uid, it.target, edge_name(source, target), layer,
                                 float(clean.binary[b]), float(ko.binary[b]), float(clean.p_follow[b]),
                                 float(ko.p_follow[b]), float(clean.p_comp[b]), float(ko.p_comp[b])))
    return pd.DataFrame(rows, columns=["uid", "target", "edge", "layer", "p_bin", "p_bin_ko", "p_full", "p_full_ko",
                                       "p_comp_full", "p_comp_full_ko"])


def effect_measures(df: pd.DataFrame) -> pd.DataFrame:
    """Add per-sample effect columns: our I_NSSD and the alternative candidates."""
    eps = 1e-12
    p, q = df["p_bin"].clip(eps, 1 - eps), df["p_bin_ko"].clip(eps, 1 - eps)
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    return df.assign(
        i_nssd=np.log(q / p),
        signed_kl=np.sign(q - p) * kl,
        log_odds=np.log(q / (1 - q)) - np.log(p / (1 - p)),
        unconstrained=np.log(df["p_full_ko"].clip(eps) / df["p_full"].clip(eps)),
    )


MEASURES = ("i_nssd", "signed_kl", "log_odds", "unconstrained")


def curves(df: pd.DataFrame, n_layers: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Mean effect per (target, edge, layer) with a 95% bootstrap CI for I_NSSD."""
    df = effect_measures(df)
    out = []
    for (target, edge, layer), g in df.groupby(["target", "edge", "layer"], sort=True):
        est, lo, hi = bootstrap_ci(g["i_nssd"], n_boot=n_boot, seed=seed)
        row = {"target": target, "edge": edge, "layer": layer, "depth": (layer + 0.5) / n_layers, "n": len(g),
               "i_nssd": est, "ci_low": lo, "ci_high": hi}
        row.update({m: float(g[m].mean()) for m in MEASURES if m != "i_nssd"})
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


def subsample_stability(df: pd.DataFrame, fractions=(0.2, 0.4, 0.6, 0.8, 1.0), seed: int = 0) -> pd.DataFrame:
    """Curves recomputed on random subsets of samples (no new forward passes): Pearson r with
    the full curve and the peak (most negative) layer, per edge and direction."""
    df = effect_measures(df)
    full = df.groupby(["target", "edge", "layer"])["i_nssd"].mean()
    uids = np.array(sorted(df["uid"].unique()))
    rng = np.random.default_rng(seed)
    rows = []
    for frac in fractions:
        keep = set(rng.choice(uids, size=max(2, int(round(frac * len(uids)))), replace=False))
        sub = df[df["uid"].isin(keep)].groupby(["target", "edge", "layer"])["i_nssd"].mean()
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
    last position; flows are summed over (target, source) position pairs and heads, inside the
    attention hook. Returns rows ``(uid, target, pair, layer, flow)``.
    """
    from .interventions import saliency_flow

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
            r = readout(last_logits(bundle.model(**batch.inputs), batch.lengths), answers)
            r.logit_diff.sum().backward()
        bundle.model.zero_grad(set_to_none=True)
        for name, per_layer in store.items():
            for layer, flow in per_layer.items():
                for b, it in enumerate(chunk):
                    rows.append((it.uid, it.target, name, layer, float(flow[b])))
    return pd.DataFrame(rows, columns=["uid", "target", "pair", "layer", "flow"])


#: smallest |I_NSSD| we call an effect: a 5% change of the binary following probability
MEANINGFUL = 0.05


def verdicts(curve: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """The chapter's claims, each with our number (and 95% CI) and a verdict.

    *reproduced*: the 95% CI excludes zero in the paper's direction, the effect is at least
    :data:`MEANINGFUL`, and (for routes) it beats the bypass route; *partly*: the CI excludes
    zero in the paper's direction but the effect is smaller or does not beat the bypass;
    otherwise *not reproduced*.
    """
    def point(edge, target, how="min"):
        c = curve[(curve["edge"] == edge) & (curve["target"] == target)]
        if c.empty:
            return None
        row = c.loc[c["i_nssd"].idxmin() if how == "min" else c["i_nssd"].idxmax()]
        return row

    rows = []

    def add(claim, paper, row, ok, partly, control):
        if row is None:
            rows.append({"claim": claim, "paper": paper, "ours": "n/a", "control": control, "verdict": "not measured"})
            return
        ours = (f"{row['i_nssd']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] at layer {int(row['layer'])} "
                f"(of 0–{n_layers - 1})")
        rows.append({"claim": claim, "paper": paper, "ours": ours, "control": control,
                     "verdict": "reproduced" if ok else ("partly" if partly else "not reproduced")})

    vt_v = point("Vision -/-> Text", "image", "min")
    vt_t = point("Vision -/-> Text", "text", "max")
    add("Cutting Vision→Text hurts vision following", "−1.36 at layer 14/28", vt_v,
        vt_v is not None and vt_v["ci_high"] < 0 and vt_v["i_nssd"] <= -MEANINGFUL,
        vt_v is not None and vt_v["ci_high"] < 0, "Vision→Last")
    add("… and helps text following (non-selective transfer)", "+0.39 at layer 14/28", vt_t,
        vt_t is not None and vt_t["ci_low"] > 0 and vt_t["i_nssd"] >= MEANINGFUL,
        vt_t is not None and vt_t["ci_low"] > 0, "—")
    ti = point("TextCtx -/-> Instruction", "text")
    tl = point("TextCtx -/-> Last", "text")
    add("Text context is routed through the instruction", "−0.81 at layer 15/28", ti,
        ti is not None and ti["ci_high"] < 0 and ti["i_nssd"] <= -MEANINGFUL and (tl is None or ti["i_nssd"] < tl["i_nssd"]),
        ti is not None and ti["ci_high"] < 0, "TextCtx→Last (bypass)")
    vi = point("Vision -/-> Instruction", "image")
    vl = point("Vision -/-> Last", "image")
    add("Vision is routed through the instruction", "−0.58 at layer 14/28", vi,
        vi is not None and vi["ci_high"] < 0 and vi["i_nssd"] <= -MEANINGFUL and (vl is None or vi["i_nssd"] < vl["i_nssd"]),
        vi is not None and vi["ci_high"] < 0, "Vision→Last (bypass)")
    for target, edge in (("text", "TextCtx -/-> Constraint"), ("image", "Vision -/-> Constraint")):
        c = curve[(curve["edge"] == edge) & (curve["target"] == target)]
        if not c.empty:
            worst = c.loc[c["i_nssd"].abs().idxmax()]
            ok = bool(abs(worst["i_nssd"]) < MEANINGFUL)
            rows.append({"claim": f"Control: cutting {edge.split(' ')[0]} into the constraint does nothing",
                         "paper": "|I_NSSD| < 0.01", "ours": f"max |I_NSSD| {abs(worst['i_nssd']):.3f}",
                         "control": "—", "verdict": "reproduced" if ok else "not reproduced"})
    return pd.DataFrame(rows)
