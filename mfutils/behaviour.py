"""Chapter 00: how often the model follows the instructed modality, and how well it reads each
modality alone."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import synthetic
from .evaluation import EVAL_MIX, control_filter, load_items, run_readouts, summarize
from .params import RunSpec

#: What the paper's public material reports for the baseline (paper-notes.md). The paper's own
#: baseline MF ratios are not public; its items were filtered per model to those answered
#: right from each modality alone (842 of Qwen2.5-VL-7B, 896 of LLaVA-1.5-7B).
PAPER_BASELINE = {
    "items kept by the per-model filter": "842 (Qwen2.5-VL-7B), 896 (LLaVA-1.5-7B)",
    "baseline MF ratio per direction": "not in the public material",
}


@dataclass(frozen=True)
class BehaviourSpec(RunSpec):
    chapter: str = "00_behaviour"
    n_boot: int = 1000


def conditions(spec: BehaviourSpec) -> dict[str, list]:
    """The item sets chapter 00 evaluates, by condition name."""
    if spec.data.startswith("synthetic"):
        return {
            "held-out combinations": load_items("synthetic", spec.n_samples, spec.seed, EVAL_MIX),
            "held-out paraphrases": load_items(
                "synthetic_heldout_paraphrase", spec.n_samples // 2, spec.seed, {"conflict": 1.0}
            ),
            "paper instructions": synthetic.paper_conflicts(spec.n_samples // 4, spec.seed),
        }
    items = load_items(spec.data, spec.n_samples, spec.seed, coco_dir=spec.coco_dir)
    return {"paper items": items}


def run(bundle, spec: BehaviourSpec) -> dict[str, pd.DataFrame]:
    """Readouts and summaries for every condition; returns named tables."""
    rows, summaries = [], []
    for name, items in conditions(spec).items():
        table = run_readouts(bundle, items, spec.batch_size).assign(condition=name)
        rows.append(table)
        summaries.append(summarize(table, spec.n_boot, spec.seed).assign(condition=name))
        conflicts = [it for it in items if it.kind == "conflict"]
        if conflicts:
            kept, controls = control_filter(bundle, conflicts, spec.batch_size)
            c = controls.assign(condition=name + " (derived controls)")
            rows.append(c)
            summaries.append(summarize(c, spec.n_boot, spec.seed).assign(condition=name + " (derived controls)"))
            summaries.append(pd.DataFrame([{
                "kind": "filter", "target": "-", "n": len(conflicts), "following_ratio": len(kept) / len(conflicts),
                "ci_low": float("nan"), "ci_high": float("nan"), "competitor_share": float("nan"),
                "other_share": float("nan"), "condition": name + " (kept by control filter)"}]))
    readouts = pd.concat(rows, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    prior = prior_split(readouts)
    return {"readouts": readouts, "summary": summary, "prior": prior}


def prior_split(readouts: pd.DataFrame) -> pd.DataFrame:
    """Following ratio on colour conflicts, split by whether the competitor is the noun's prior."""
    c = readouts[(readouts["kind"] == "conflict") & readouts["prior"].notna()]
    if c.empty:
        return pd.DataFrame()
    g = c.groupby(["target", "competitor_is_prior"])["decision"]
    return g.apply(lambda d: float((d == 1).mean())).rename("following_ratio").reset_index().assign(
        n=g.size().values
    )


def targets_met(summary: pd.DataFrame, threshold: float = 0.95) -> pd.DataFrame:
    """The organism's accuracy targets (issue: >= 95% each) against the measured values,
    one verdict row each (claim, paper, ours with its 95% CI, verdict)."""
    s = summary[summary["condition"] == "held-out combinations"]
    want = [("conflict", "image", "follows the image when told to"), ("conflict", "text", "follows the text when told to"),
            ("image_only", "-", "answers from the image alone"), ("text_only", "-", "answers from the text alone")]
    rows = []
    for kind, target, what in want:
        r = s[(s["kind"] == kind) & (s["target"] == target)]
        if not len(r):
            rows.append({"claim": f"The model {what} (target ≥ {threshold:.0%})", "paper": "—", "ours": "not measured",
                         "verdict": "not measured", "value": float("nan")})
            continue
        r = r.iloc[0]
        rows.append({"claim": f"The model {what} (target ≥ {threshold:.0%})", "paper": "—",
                     "ours": f"{r['following_ratio']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}] of {int(r['n'])} held-out items",
                     "verdict": "met" if r["following_ratio"] >= threshold else "not met",
                     "value": float(r["following_ratio"])})
    return pd.DataFrame(rows)
