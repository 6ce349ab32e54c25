"""Chapter 00: how often the model follows the instructed modality, and how well it reads each
modality alone."""

from __future__ import annotations

import typing

from dataclasses import dataclass

import pandas as pd

from mfutils.data import instruction_banks, synthetic
from mfutils.findings.evaluation import EVAL_MIX, control_filter, load_items, run_readouts, summarize
from mfutils.engine.metrics import bootstrap_ci
from mfutils.runs.params import RunSpec
from mfutils.findings.rules import MIN_PHRASINGS_MET, TARGET_HELDOUT, TARGET_PAPER, TARGET_PHRASING

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
    #: the files a finished run holds (:meth:`mfutils.runs.results.RunWriter.finish` refuses to finish without them)
    OUTPUTS: typing.ClassVar[tuple[str, ...]] = (
        "answer_distribution.csv", "answer_distribution.png", "following_ratio.csv", "following_ratio.png",
        "phrasings.csv", "phrasings.parquet", "readouts.csv", "readouts.parquet", "results.json", "summary.csv",
        "summary.parquet", "trained_phrasings.csv", "trained_phrasings.parquet", "unseen_phrasings.csv",
        "unseen_phrasings.png",
    )
    n_samples: int = 256
    n_boot: int = 1000


def conditions(spec: BehaviourSpec) -> dict[str, list]:
    """The item sets chapter 00 evaluates, by condition name."""
    if spec.data.startswith("synthetic"):
        bank = instruction_banks.phrasings_for(spec.model_id)
        return {
            "held-out combinations": load_items("synthetic", spec.n_samples, spec.seed, EVAL_MIX, phrasings=bank),
            "held-out paraphrases": load_items(
                "synthetic_heldout_paraphrase", spec.n_samples // 2, spec.seed, {"conflict": 1.0}, phrasings=bank
            ),
            "paper instructions": synthetic.paper_conflicts(spec.n_samples // 4, spec.seed),
        }
    items = load_items(spec.data, spec.n_samples, spec.seed, coco_dir=spec.coco_dir)
    return {"paper items": items}


#: how :func:`run` names a condition's single-modality controls derived from its conflict items
DERIVED_SUFFIX = " (derived controls)"


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
            c = controls.assign(condition=name + DERIVED_SUFFIX)
            rows.append(c)
            summaries.append(summarize(c, spec.n_boot, spec.seed).assign(condition=name + DERIVED_SUFFIX))
            summaries.append(pd.DataFrame([{
                "kind": "filter", "target": "-", "n": len(conflicts), "following_ratio": len(kept) / len(conflicts),
                "ci_low": float("nan"), "ci_high": float("nan"), "competitor_share": float("nan"),
                "other_share": float("nan"), "condition": name + " (kept by control filter)"}]))
    readouts = pd.concat(rows, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    prior = prior_split(readouts)
    synthetic_data = spec.data.startswith("synthetic")
    phrasings = unseen_phrasings(bundle, spec) if synthetic_data else pd.DataFrame()
    trained = training_phrasings(bundle, spec) if synthetic_data else pd.DataFrame()
    return {"readouts": readouts, "summary": summary, "prior": prior, "phrasings": phrasings, "trained_phrasings": trained}




def unseen_phrasing_items(spec: "BehaviourSpec", templates: tuple[str, ...] = instruction_banks.UNSEEN_TEMPLATES
                          ) -> dict[str, list]:
    """``sentence -> conflicts`` for every sentence held out of the pretrained organism's
    training (``templates``: the chapter's test set :data:`mfutils.data.instruction_banks.UNSEEN_TEMPLATES`,
    or the recipe-choosing :data:`~mfutils.data.instruction_banks.VALIDATION_TEMPLATES`, with the words
    "image" and "text"), in both directions; ``spec.n_samples // 8`` held-out conflicts each,
    the same conflicts for every sentence of a direction."""
    return sentence_items(spec, instruction_banks.plain_sentences(templates))


def sentence_items(spec: "BehaviourSpec", sentences: dict[str, tuple[str, ...]]) -> dict[str, list]:
    """``sentence -> conflicts``: each of ``sentences`` (``{target: sentences}``) asked on the
    same ``spec.n_samples // 8`` held-out conflicts (seed ``spec.seed + 11``), so that every
    table read this way (unseen sentences, training sentences) compares sentences, not samples."""
    from mfutils.findings.evaluation import with_target

    base = synthetic.make_split("eval", max(spec.n_samples // 8, 1), spec.seed + 11, {"conflict": 1.0})
    return {sentence: [with_target(it, target, sentence) for it in base]
            for target in ("image", "text") for sentence in sentences[target]}


def unseen_phrasings(bundle, spec: "BehaviourSpec", templates: tuple[str, ...] = instruction_banks.UNSEEN_TEMPLATES
                     ) -> pd.DataFrame:
    """Following ratio (95% bootstrap CI) per unseen sentence and direction (``templates`` as
    in :func:`unseen_phrasing_items`); see :func:`sentence_following`."""
    return sentence_following(bundle, spec, unseen_phrasing_items(spec, templates))


def training_phrasings(bundle, spec: "BehaviourSpec") -> pd.DataFrame:
    """:func:`sentence_following` for one sentence per template of the model's core training
    bank (:func:`mfutils.data.instruction_banks.core_training_sentences`), on the unseen table's
    conflicts: where a shortfall on the held-out combinations comes from. No target reads it."""
    return sentence_following(bundle, spec, sentence_items(spec, instruction_banks.core_training_sentences(spec.model_id)))


def sentence_following(bundle, spec: "BehaviourSpec", items_by_sentence: dict[str, list]) -> pd.DataFrame:
    """One row per sentence (``items_by_sentence``: ``sentence -> conflicts``, one direction
    each): ``direction``, ``instruction``, ``n``, ``following_ratio`` with its 95% bootstrap CI,
    ``competitor_share`` (answers from the other modality: the sentence read the wrong way
    round) and ``note``.

    A model whose tokenizer cannot represent a sentence (the tiny organism's word-level
    vocabulary) gets a row saying so instead of a ratio read from ``<unk>`` tokens.
    """
    from mfutils.engine.encoding import UnrepresentableTextError

    rows = []
    for sentence, items in items_by_sentence.items():
        row = {"direction": items[0].target, "instruction": sentence, "n": len(items)}
        try:
            table = run_readouts(bundle, items, spec.batch_size)
        except UnrepresentableTextError as err:
            rows.append(row | {"following_ratio": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                               "competitor_share": float("nan"),
                               "note": "cannot be read: no token for " + ", ".join(map(repr, err.words))})
            continue
        est, lo, hi = bootstrap_ci((table["decision"] == 1).astype(float), n_boot=spec.n_boot, seed=spec.seed)
        rows.append(row | {"following_ratio": est, "ci_low": lo, "ci_high": hi,
                           "competitor_share": float((table["decision"] == -1).mean()), "note": ""})
    return pd.DataFrame(rows)


def phrasing_view(phrasings: pd.DataFrame) -> pd.DataFrame:
    """:func:`sentence_following`'s table for reading: per sentence a "followed" cell, as a
    percentage with its 95% CI, or why the tokenizer could not read it, and the share answered
    from the other modality."""
    def cell(r) -> str:
        if r["note"]:
            return r["note"]
        return f"{r['following_ratio']:.0%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}] of {int(r['n'])}"

    columns = ["direction", "instruction", "followed", "from the other modality"]
    if not len(phrasings):
        return pd.DataFrame(columns=columns)
    other = phrasings["competitor_share"].map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    return pd.DataFrame(dict(zip(columns, [phrasings["direction"], phrasings["instruction"],
                                           phrasings.apply(cell, axis=1), other])))


def shortfall_sentence(phrasings: pd.DataFrame, what: str, bar: float = TARGET_PHRASING) -> str:
    """One sentence naming the sentences of ``phrasings`` (:func:`sentence_following`) followed
    below ``bar``, lowest first, and how many of them the model reads the wrong way round
    (answers from the other modality on at least half its conflicts); ``what`` names the table
    ("training sentences")."""
    readable = phrasings[phrasings["following_ratio"].notna()] if len(phrasings) else phrasings
    if not len(readable):
        return f"No {what} could be read by this model."
    low = readable[readable["following_ratio"] < bar].sort_values(["following_ratio", "direction", "instruction"])
    if not len(low):
        return f"Every one of the {len(readable)} {what} is followed on at least {bar:.0%} of its conflicts."
    listed = "; ".join(f"“{r.instruction}” {r.following_ratio:.0%} (other modality {r.competitor_share:.0%})"
                       for r in low.itertuples())
    inverted = int((low["competitor_share"] >= 0.5).sum())
    one = len(low) == 1
    head = (f"{len(low)} of the {len(readable)} {what} {'is' if one else 'are'} followed on fewer than {bar:.0%} "
            f"of {'its' if one else 'their'} conflicts: {listed}.")
    if not inverted:
        return head + (" None is read the wrong way round (answered from the other modality on at least half of its"
                       " conflicts).")
    if one:
        return head + " The model reads it the wrong way round, answering from the other modality on at least half of its conflicts."
    return head + (f" The model reads {inverted} of them the wrong way round, answering from the other modality on at "
                   "least half of their conflicts.")


#: the figure's kinds, top to bottom
FIGURE_KINDS = ("conflict", "consistent", "image_only", "text_only")


def figure_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary rows chapter 0's bar chart shows, bottom to top for ``barh``, with a
    ``label`` ("condition · kind → target"), a ``group`` (the condition, its derived controls
    included) and a ``short`` label within it ("conflict → image", "image-only, derived"), and
    a ``hue`` (the modality the answer must come from)."""
    d = summary[summary["kind"].isin(FIGURE_KINDS)].copy()
    what = d["kind"].str.replace("_", "-") + d["target"].map(lambda t: "" if t == "-" else f" → {t}")
    d["label"] = d["condition"] + " · " + what
    derived = d["condition"].str.endswith(DERIVED_SUFFIX)
    d["group"] = d["condition"].str.removesuffix(DERIVED_SUFFIX)
    d["short"] = what + derived.map({True: ", derived", False: ""})
    d["hue"] = d["target"].where(d["target"] != "-", d["kind"].str.replace("_only", ""))
    d["order"] = d["kind"].map(FIGURE_KINDS.index)
    return d.sort_values(["condition", "order", "target"], kind="stable").iloc[::-1].drop(columns="order").reset_index(drop=True)


def prior_split(readouts: pd.DataFrame, decided_only: bool = False) -> pd.DataFrame:
    """Following ratio on conflicts, split by whether the competitor is the noun's prior colour.

    ``readouts``: one row per sample with ``target``, ``decision`` and ``competitor_is_prior``;
    rows of another ``kind`` than conflict, and nouns without a prior (``prior`` missing), are
    left out where those columns exist. ``decided_only``: count only samples answered from one
    of the two modalities (chapter 3's reading), not "neither" answers."""
    c = readouts
    if "kind" in c.columns:
        c = c[c["kind"] == "conflict"]
    if "prior" in c.columns:
        c = c[c["prior"].notna()]
    if decided_only:
        c = c[c["decision"] != 0]
    if c.empty:
        return pd.DataFrame()
    g = c.groupby(["target", "competitor_is_prior"])["decision"]
    return g.apply(lambda d: float((d == 1).mean())).rename("following_ratio").reset_index().assign(
        n=g.size().values
    )


def targets_met(summary: pd.DataFrame, phrasings: pd.DataFrame | None = None,
                threshold: float = TARGET_HELDOUT) -> pd.DataFrame:
    """The organisms' behaviour targets against the measured values, one verdict row each
    (claim, paper, ours with its 95% CI, verdict): each direction and control on held-out
    items; the paper's two sentences; and how many unseen phrasings per direction are
    followed at least :data:`TARGET_PHRASING` of the time."""
    want = [("held-out combinations", "conflict", "image", f"follows the image when told to (target ≥ {threshold:.0%})", threshold),
            ("held-out combinations", "conflict", "text", f"follows the text when told to (target ≥ {threshold:.0%})", threshold),
            ("held-out combinations", "image_only", "-", f"answers from the image alone (target ≥ {threshold:.0%})", threshold),
            ("held-out combinations", "text_only", "-", f"answers from the text alone (target ≥ {threshold:.0%})", threshold),
            ("paper instructions", "conflict", "image", f"follows the paper's image sentence, never trained on (target ≥ {TARGET_PAPER:.0%})", TARGET_PAPER),
            ("paper instructions", "conflict", "text", f"follows the paper's text sentence, never trained on (target ≥ {TARGET_PAPER:.0%})", TARGET_PAPER)]
    rows = []
    for condition, kind, target, what, bar in want:
        r = summary[(summary["condition"] == condition) & (summary["kind"] == kind) & (summary["target"] == target)]
        if not len(r):
            rows.append({"claim": f"The model {what}", "paper": "—", "ours": "not measured",
                         "verdict": "not measured", "value": float("nan")})
            continue
        r = r.iloc[0]
        # rule of 2026-12-06: the target beside the interval's lower end, so that a target met on
        # the point estimate alone says so
        low = (f"; the interval's low end {r['ci_low']:.1%} is below the target {bar:.0%}" if r["ci_low"] < bar
               else f"; the whole interval is at or above the target {bar:.0%}")
        rows.append({"claim": f"The model {what}", "paper": "—",
                     "ours": f"{r['following_ratio']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}] of {int(r['n'])} items" + low,
                     "verdict": "met" if r["following_ratio"] >= bar else "not met",
                     "value": float(r["following_ratio"])})
    for target in ("image", "text"):
        claim = (f"The model follows at least {MIN_PHRASINGS_MET} unseen phrasings of the {target} instruction "
                 f"≥ {TARGET_PHRASING:.0%} each")
        p = phrasings[phrasings["direction"] == target] if phrasings is not None and len(phrasings) else None
        if p is None or not len(p):
            rows.append({"claim": claim, "paper": "—", "ours": "not measured", "verdict": "not measured", "value": float("nan")})
            continue
        readable = p[p["following_ratio"].notna()]
        met = int((readable["following_ratio"] >= TARGET_PHRASING).sum())
        ours = f"{met} of {len(p)} at ≥ {TARGET_PHRASING:.0%}"
        if len(readable) < len(p):
            ours += f" ({len(p) - len(readable)} cannot be read by this tokenizer)"
        rows.append({"claim": claim, "paper": "—", "ours": ours,
                     "verdict": "met" if met >= MIN_PHRASINGS_MET else "not met", "value": float(met)})
    return pd.DataFrame(rows)
