"""The front page's answer first: what reproduced, per finding and model, before any detail.

- :func:`glance`: one line per finding (chapter 0's baseline, then the paper's five), its gist,
  and a coloured badge per model saying whether it holds there
  (:func:`mfutils.findings.rules.finding_holds` over the finding's paper claims);
- :func:`tallies`: each model's verdicts counted separately for the three kinds of rows: the
  paper's claims, the model's own checks (chapter 0) and the book's own claims
  (:data:`mfutils.findings.rules.OWN_CLAIMS`);
- :func:`legend`: every verdict word the page uses, defined;
- :func:`claims_table`: the full table, one verdict column per model beside what it measured.

Everything is read from the chapters' result files through :mod:`mfutils.book.chapters`; nothing
here holds a number.
"""

from __future__ import annotations

import html
from collections import Counter

import pandas as pd

from mfutils.findings import rules

#: the paper's column header: its model (the unit is the paper's own; the page says so above the table)
PAPER_COLUMN = "paper (Qwen2.5-VL-7B, in its unit)"

#: badge colours (background, text) per word: agreement green, part amber, disagreement red, none grey
COLOURS = {
    "holds": ("#d6f0dc", "#14532d"), "reproduced": ("#d6f0dc", "#14532d"), "met": ("#d6f0dc", "#14532d"),
    "in part": ("#fdf0c8", "#713f12"), "partly": ("#fdf0c8", "#713f12"),
    "does not hold": ("#f9d9d9", "#7f1d1d"), "not reproduced": ("#f9d9d9", "#7f1d1d"), "not met": ("#f9d9d9", "#7f1d1d"),
}
GREY = ("#e8e8e8", "#333333")

#: what each word means, in the order the legend lists them
DEFINITIONS = {
    "holds": "every paper claim of the finding that could be measured is reproduced (chapter 0: every target met)",
    "in part": "some of the finding's claims are reproduced (or partly), others not",
    "does not hold": "its claims were measured and none of them shows the paper's effect",
    "reproduced": "the model shows the paper's effect by the claim's rule, written before the run: its measure reaches the "
                  "threshold with a 95% interval that excludes no effect, and its control does not show it",
    "partly": "the effect points the paper's way but reaches only half its threshold, or holds in one of two directions",
    "not reproduced": "by the same rule, the model does not show the effect (too small, the other way, or its control shows it too)",
    "met": "a target or hypothesis of the book's own (chapter 0's checks, the fast scorer, \"query, then fetch\") is reached",
    "not met": "that target or hypothesis is not reached",
    "not measurable": "the run could not measure it (for example fewer than 30 failures), so no verdict either way",
    "not measured": "nothing of the finding could be measured",
    "not run": "no finished run of the chapter for these parameters",
}

#: the glance's last column: whether a finding holds in both models, one or neither
BETWEEN = "in both models?"

KINDS = ("the paper's claims", "the model's own checks (chapter 0)", "the book's own claims")


def row_kind(ch: int, rule: str) -> str:
    """Which of :data:`KINDS` a summary row belongs to."""
    if ch == 0:
        return KINDS[1]
    return KINDS[2] if rule in rules.OWN_CLAIMS else KINDS[0]


def badge(word: str, extra: str = "") -> str:
    """``word`` as a coloured badge (HTML), ``extra`` after it in plain text."""
    bg, fg = COLOURS.get(word, GREY)
    span = (f'<span class="mf-badge" style="background:{bg};color:{fg};padding:0.05rem 0.4rem;border-radius:0.6rem;'
            f'font-weight:600;white-space:nowrap">{html.escape(word)}</span>')
    return span + (f" {html.escape(extra)}" if extra else "")


class _Badged:
    """A table whose cells may hold badges: HTML for the page, aligned text for nbval."""

    def __init__(self, text: pd.DataFrame, cells: list[list[str]], css: str = ""):
        self._text = text.to_string(index=False) if len(text) else "(no rows)"
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in text.columns)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)
        self._html = f'<table class="mf-table {css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def _repr_html_(self) -> str:
        return self._html

    def __repr__(self) -> str:
        return self._text


def _tables(overrides: dict) -> dict[str, pd.DataFrame]:
    """Front-page model name -> its summary table (the book's model first, then the comparison's)."""
    from mfutils.book.chapters import comparison_parameters, summary_table
    from mfutils.book.comparison import _models, front_name

    common, per = comparison_parameters()
    book, compared = _models(overrides)
    return {front_name(book): summary_table(**overrides),
            front_name(compared): summary_table(per_chapter=per, **{**overrides, **common})}


def glance(**overrides) -> _Badged:
    """One line per finding: its gist; per model, a badge (holds / in part / does not hold) with
    the count of its paper claims that show the effect; and whether it holds in both models, one
    or neither (:func:`mfutils.findings.rules.between_families`)."""
    text_rows, cells = [], []
    for ch, per_model, between in _finding_states(overrides):
        row_text = {"finding": f"{ch.number} · {ch.gist}"}
        row_cells = [f'<a href="chapters/{ch.name}.html">{html.escape(ch.title)}</a>: {html.escape(ch.gist)}']
        for m, (state, count) in per_model.items():
            row_text[m] = f"{state} ({count})"
            row_cells.append(badge(state) + f'<br><span style="font-size:0.85em">{html.escape(count)}</span>')
        row_text[BETWEEN] = between
        row_cells.append(html.escape(between))
        text_rows.append(row_text)
        cells.append(row_cells)
    return _Badged(pd.DataFrame(text_rows), cells, css="mf-glance")


def _finding_states(overrides: dict) -> list[tuple]:
    """Per chapter of the registry: ``(chapter, {model: (state, count)}, between)``, the state
    from :func:`mfutils.book.comparison.finding_states` ("not run" without a finished run) and
    ``between`` from :func:`mfutils.findings.rules.between_families`."""
    from mfutils.book.chapters import REGISTRY
    from mfutils.book.comparison import finding_states

    tables = _tables(overrides)
    states = {m: finding_states(t) for m, t in tables.items()}
    out = []
    for ch in REGISTRY:
        per_model = {m: states[m].get(ch.number, ("not run", "no finished run")) for m in tables}
        between = rules.between_families({m.split()[0]: state for m, (state, _) in per_model.items()})
        out.append((ch, per_model, between))
    return out


def between_table(**overrides) -> pd.DataFrame:
    """One row per paper finding (chapters 1-5): its state in each model and whether it holds in
    both, one or neither (:func:`mfutils.findings.rules.between_families`), as plain text for the
    front page's section comparing the two families."""
    rows = []
    for ch, per_model, between in _finding_states(overrides):
        if ch.number == 0:  # the models' own checks, not a finding of the paper's
            continue
        rows.append({"finding": f"{ch.number} · {ch.title}",
                     **{m: f"{state} ({count})" for m, (state, count) in per_model.items()},
                     "between the families": between})
    return pd.DataFrame(rows)


def tallies(table: pd.DataFrame) -> dict[str, Counter]:
    """Kind of row (:data:`KINDS`) -> verdict counts, for one model's summary table."""
    out: dict[str, Counter] = {k: Counter() for k in KINDS}
    for ch, rule, verdict in zip(table["ch."], table["rule"], table["verdict"]):
        out[row_kind(int(ch), rule)][verdict] += 1
    return out


def _listed(counts: Counter) -> str:
    from mfutils.book.chapters import ordered_verdicts

    return ", ".join(f"{counts[v]} {v}" for v in ordered_verdicts(counts)) if counts else "none"


def tally_markdown(**overrides) -> str:
    """Per model, the three tallies as one bullet each (Markdown)."""
    lines = []
    for m, t in _tables(overrides).items():
        parts = "; ".join(f"{kind}: {_listed(c)}" for kind, c in tallies(t).items())
        lines.append(f"- **{m}** — {parts}.")
    return "\n".join(lines)


def words_in_use(**overrides) -> list[str]:
    """Every verdict word the front page shows, in :data:`DEFINITIONS`' order."""
    from mfutils.book.comparison import finding_states

    used = set()
    for t in _tables(overrides).values():
        used |= set(t["verdict"])
        used |= {s for s, _ in finding_states(t).values()}
    return [w for w in DEFINITIONS if w in used] + sorted(used - set(DEFINITIONS))


def legend(**overrides) -> str:
    """Markdown: each verdict word in use, in bold, with its definition."""
    return "\n".join(f"- **{w}**: {DEFINITIONS.get(w, 'see the chapter')}" for w in words_in_use(**overrides))


def claims_table(**overrides) -> _Badged:
    """Every claim: chapter, claim, the paper's value, and per model its verdict (a badge, its own
    column) and what it measured. Rows as :func:`mfutils.book.chapters.comparison_table`."""
    from mfutils.book.chapters import comparison_table
    from mfutils.book.tables import plain

    table = comparison_table(**overrides)
    models = [c for c in table.columns if c not in ("ch.", "claim", "paper")]
    table = table.assign(**{c: table[c].map(plain) for c in ["claim", "paper"] + models})
    names = {c: c.split(" (")[0] for c in models}
    text = pd.DataFrame({"ch.": table["ch."], "claim": table["claim"], PAPER_COLUMN: table["paper"]})
    cells = [[str(r["ch."]), html.escape(str(r["claim"])), html.escape(str(r["paper"]))] for _, r in table.iterrows()]
    for c in models:
        split = table[c].str.split(": ", n=1, expand=True).reindex(columns=[0, 1]).fillna("—")
        text[f"{names[c]}: verdict"] = split[0]
        text[f"{names[c]}: measured"] = split[1]
        for i, (v, m) in enumerate(zip(split[0], split[1])):
            cells[i] += [badge(v), html.escape(m)]
    return _Badged(text, cells, css="mf-claims")
