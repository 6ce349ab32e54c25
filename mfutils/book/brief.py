""""Result in brief": the top of every chapter, generated from the run the chapter shows.

A chapter computes its verdicts at its end; its reader wants them first. The chapter builds
:class:`Brief` after its verdict table and glues it (``myst_nb.glue``) under its title, where
the page shows it: each claim, its verdict (a badge, as on the front page), and one sentence on
what that verdict means for the paper's story. Where the model departs from the paper the
sentence says so, and the chapter's "instead" sentences (generated from its own measurements:
:func:`instead_routing` and the anomaly detectors of :mod:`mfutils.book.discussion`) say what it
does instead.

:data:`STORY` holds, per rule, what the claim would mean for the paper's story and what its
failure means; it is prose written beside the rules (not after the run), and never a number.
"""

from __future__ import annotations

import html

import pandas as pd

from mfutils.findings import rules

#: rule id -> (what the paper's story gets when the claim holds, what a departure means)
STORY = {
    "01-vt-image": ("image cues reach the text tokens through attention in the middle layers, as the paper's shallow "
                    "routing has it",
                    "the middle layers' attention from text to image is not how this model gets the image cue"),
    "01-vt-text": ("moving image cues into the text is non-selective: it happens even when the text is to be followed",
                   "no sign that image cues are pushed into the text whichever modality is named"),
    "01-vl": ("the last position never reads the image directly: image cues reach the answer only through other tokens",
              "the last position reads the image directly, so the instruction tokens are not the image's only way in"),
    "01-tl": ("the last position does not read the text context directly before the late layers",
              "the last position reads the text context directly before the late layers"),
    "01-ti": ("the text context reaches the answer through the instruction tokens, the paper's \"anchors\"",
              "the text context does not pass through the instruction tokens on its way to the answer"),
    "01-vi": ("the image reaches the answer through the instruction tokens, the paper's \"anchors\"",
              "the image does not pass through the instruction tokens on its way to the answer"),
    "01-tc": ("the routing is specific to the instruction: the constraint sentence plays no part",
              "cues into the constraint sentence matter too, so the routing is not specific to the instruction"),
    "01-vc": ("the routing is specific to the instruction: the constraint sentence plays no part",
              "cues into the constraint sentence matter too, so the routing is not specific to the instruction"),
    "01-qf": ("the last position reads which modality the instruction names, then fetches that modality's cue",
              "the instruction is not read before the cue is fetched"),
    "02-emerge": ("the decision is made deep: the answer becomes legible only in the deep layers",
                  "the decision does not wait for the deep layers"),
    "02-ldar": ("the instruction tokens carry the decision in the deep layers",
                "the instruction tokens do not carry a decision that the lens can read better than a constant guess"),
    "02-attn": ("deep attention writes the instructed answer: arbitration happens in attention",
                "deep attention does not write the instructed answer"),
    "03-alike": ("on average MLPs add general knowledge, lifting both candidates alike",
                 "on average MLPs favour one candidate"),
    "03-fail-text": ("when the model fails to follow the text, late MLPs push against it (MLP inertia)",
                     "the late MLPs are not what pushes failures away from the text"),
    "03-fail-image": ("when the model fails to follow the image, late MLPs push against it (MLP inertia)",
                      "the late MLPs are not what pushes failures away from the image"),
    "03-ablate": ("removing the late MLPs' push raises following: the inertia is causal",
                  "removing the late MLPs' push does not raise following, so the inertia is not what limits it"),
    "04-sparse": ("a few heads, about 5%, carry most of the arbitration",
                  "the arbitration is spread over many heads"),
    "04-specific": ("the top heads arbitrate rather than read a modality: blocking them spares single-modality questions",
                    "the top heads also carry single-modality reading, so they are not specific to arbitration"),
    "04-depth": ("the arbitration heads sit in the middle-to-deep layers, where the paper places arbitration",
                 "the arbitration heads do not sit where the paper places arbitration"),
    "04-fast": ("a cheap scorer finds the same heads as exact ablation (the book's own target)",
                "the cheap scorer does not find the exact ablation's heads, so every head a verdict reads is measured by exact ablation"),
    "05-block": ("blocking a few heads cuts following in both directions, far more than random heads do",
                 "blocking the heads does not cut following in both directions beyond random heads"),
    "05-general": ("blocking the heads leaves single-modality ability intact: they arbitrate, they do not read",
                   "blocking the heads harms single-modality ability too"),
    "05-amplify": ("amplifying the heads repairs failed samples without breaking successes",
                   "amplifying the heads does not repair failures cleanly (too few repaired, or successes broken)"),
}

#: chapter 0's checks carry no rule id: what they mean for the book
BASELINE = ("the model is a fair stand-in for the paper's models on this check",
            "on this check the model falls short of the baseline the findings assume")


def meaning(rule_id: str, verdict: str, ours: str) -> str:
    """One sentence: what ``verdict`` on the claim of ``rule_id`` means for the paper's story."""
    holds, departs = STORY.get(rule_id, BASELINE)
    if rule_id in rules.OWN_CLAIMS or rule_id not in STORY:  # the book's own claims and chapter 0's checks
        if verdict in rules.AGREES:
            return f"Met (the book's own {'check' if rule_id not in STORY else 'claim'}, not the paper's): {holds}."
        if verdict in rules.DISAGREES:
            return f"Not met (the book's own {'check' if rule_id not in STORY else 'claim'}): {departs}. Measured: {ours}."
    if verdict in rules.AGREES:
        return f"As in the paper: {holds}."
    if verdict in rules.PARTLY:
        return (f"Only in part ({holds}): the effect points the paper's way but falls short of the rule's size, "
                f"or holds in one direction only. Measured: {ours}.")
    if verdict in rules.DISAGREES:
        return f"Departs from the paper: {departs}. Measured: {ours}."
    return f"No verdict either way: {ours}."


class Brief:
    """A chapter's result in brief: HTML for the page, plain text for nbval and for a terminal."""

    def __init__(self, model: str, verdict: pd.DataFrame, instead: list[str] | None = None):
        from mfutils.book import chapters
        from mfutils.book.frontpage import badge
        from mfutils.book.tables import plain

        rows = []
        for r in verdict.itertuples():
            rule_id = getattr(r, "rule", "") or ""
            rows.append((plain(r.claim.lstrip("… ").rstrip(".")), r.verdict, plain(meaning(rule_id, r.verdict, r.ours))))
        counts = pd.Series([v for _, v, _ in rows]).value_counts()
        tally = ", ".join(f"{int(counts[v])} {v}" for v in chapters.ordered_verdicts(counts.index))
        self.lead = f"On the {model}, this chapter's {len(rows)} claim{'s' if len(rows) != 1 else ''}: {tally}."
        self.instead = [plain(s) for s in (instead or [])]
        body = "".join(f"<tr><td>{html.escape(c)}</td><td>{badge(v)}</td><td>{html.escape(m)}</td></tr>" for c, v, m in rows)
        extra = "".join(f"<p>{_md_inline(s)}</p>" for s in self.instead)
        self._html = (f'<div class="mf-brief"><p><strong>{html.escape(self.lead)}</strong></p>'
                      f'<table class="mf-table mf-brief-table"><thead><tr><th>claim</th><th>verdict</th>'
                      f"<th>what it means for the paper's story</th></tr></thead><tbody>{body}</tbody></table>{extra}</div>")
        self._text = "\n".join([self.lead] + [f"- {c}: {v}. {m}" for c, v, m in rows] + self.instead)

    def _repr_html_(self) -> str:
        return self._html

    def __repr__(self) -> str:
        return self._text


def _md_inline(text: str) -> str:
    """The few Markdown marks the chapters' generated sentences use (``**bold**``, ``*italic*``) as HTML."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\*(.+?)\*", r"<em>\1</em>", out)


def glue_brief(model: str, verdict: pd.DataFrame, instead: list[str] | None = None) -> Brief:
    """Build the chapter's :class:`Brief` and glue it under the name ``brief`` (shown at the
    chapter's top by its ``{glue} brief`` directive; not displayed where it is built)."""
    from myst_nb import glue

    b = Brief(model, verdict, instead)
    glue("brief", b, display=False)
    return b


def instead_routing(route: pd.DataFrame, n_layers: int) -> list[str]:
    """Chapter 1's "what it does instead", from its route map (:func:`mfutils.findings.routing.route_map`):
    the single cut that hurts each direction's following most, anywhere in depth, and whether it
    lies in the paper's routing band."""
    out = []
    for target, g in route.groupby("target", sort=True):
        row = g.loc[g["log_odds"].idxmin()]
        if row["log_odds"] > -rules.EFFECT_THRESHOLD:
            continue
        where = ("inside" if rules.ROUTING_BAND[0] <= row["depth"] <= rules.ROUTING_BAND[1] else "outside")
        out.append(f"{target} following depends most on {row['edge'].replace(' -/-> ', '→')} at depth "
                   f"{row['depth']:.2f} (layer {int(row['layer'])} of {n_layers}; cutting it: {row['log_odds']:+.2f} "
                   f"log-odds), {where} the paper's routing band {rules.ROUTING_BAND[0]:.2f}–{rules.ROUTING_BAND[1]:.2f}")
    if not out:
        return []
    return ["**What it does instead.** " + "; ".join(out) + "."]
