"""One way to show a table in the book: no index, no cut cells, numbers formatted, column-wide.

    from mfutils.book import tables
    tables.show(summary, percent=["following_ratio"])

pandas' default notebook view shows a meaningless index, cuts every cell at 50 characters
(the verdict tables hid their text-following numbers behind "…") and prints floats as
0.966667. :func:`render` writes the HTML the book shows instead; the page's stylesheet
(``_static/tables.css``) wraps long cells, so a table never runs past the page column (the
site test measures that in a browser).
"""

from __future__ import annotations

import html
import math
from typing import Iterable

import numpy as np
import pandas as pd

#: the pair of columns holding a bootstrap interval, folded into the value they qualify
CI_COLUMNS = ("ci_low", "ci_high")


def fmt_number(x, digits: int = 3) -> str:
    """A float to ``digits`` significant digits (integers as integers; NaN as an em dash)."""
    if hasattr(x, "item"):  # numpy scalars
        x = x.item()
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1):
        return f"{int(x):,}"
    if abs(x) >= 10 ** digits:  # whole numbers with separators, never 3.89e+03
        return f"{round(x):,}"
    if abs(x) >= 1e-3 or x == 0:
        return f"{x:.{digits}g}"
    # a reader reads 0.00035 where 3.5e-04 needs decoding: positional, two significant digits
    return np.format_float_positional(x, precision=2, unique=False, fractional=False, trim="-")


def fmt_percent(x, low=None, high=None) -> str:
    """``0.967`` -> ``96.7%``; with a CI, ``96.7% [93.1, 98.6]`` (NaN: an em dash)."""
    x, low, high = (v.item() if hasattr(v, "item") else v for v in (x, low, high))
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    out = f"{100 * x:.1f}%"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        out += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return out


def format_frame(df: pd.DataFrame, percent: Iterable[str] = (), rename: dict | None = None,
                 columns: list[str] | None = None) -> pd.DataFrame:
    """``df`` as strings: ``percent`` columns as percentages, each folding in ``ci_low``/
    ``ci_high`` (or ``<col>_ci_low``/``<col>_ci_high``) when present; other floats to 3
    significant digits. The CI columns folded in are dropped. ``columns`` picks and orders
    the columns first; ``rename`` relabels them last (plain words for a reader)."""
    df = df.reset_index(drop=not _named_index(df)) if not isinstance(df.index, pd.RangeIndex) else df
    if isinstance(df.columns, pd.MultiIndex):  # a pivot's column levels, as one label each
        df = df.set_axis([" ".join(str(p) for p in c if str(p)).strip() for c in df.columns], axis=1)
    cis = _ci_map(df, percent)
    folded = {c for pair in cis.values() for c in pair}
    if columns is not None:
        df = df[columns + [c for c in df.columns if c not in columns and c in folded]]
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        if col in folded:
            continue
        values = df[col]
        if col in cis or col in percent:
            lo, hi = cis.get(col, (None, None))
            out[col] = [fmt_percent(v, df[lo].iloc[i] if lo else None, df[hi].iloc[i] if hi else None)
                        for i, v in enumerate(values)]
        elif pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
            out[col] = [fmt_number(v) for v in values]
        else:
            out[col] = [_cell(v) for v in values]
    # result-file names reach the reader as words (the shared name map); a chapter's own names win
    out = out.rename(columns={c: COLUMN_WORDS[c] for c in out.columns if c in COLUMN_WORDS and c not in (rename or {})})
    if rename:
        out = out.rename(columns=rename)
    return out.reset_index(drop=True)


def render(df: pd.DataFrame, percent: Iterable[str] = (), rename: dict | None = None,
           columns: list[str] | None = None, caption: str | None = None) -> str:
    """The HTML of :func:`format_frame`'s table: no index, every cell whole, escaped."""
    return _html(format_frame(df, percent=tuple(percent), rename=rename, columns=columns), caption)


def _html(shown: pd.DataFrame, caption: str | None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>"
                   for r in shown.itertuples(index=False))
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="mf-table">{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def constant_columns(shown: pd.DataFrame, min_rows: int = 3) -> tuple[pd.DataFrame, str]:
    """``(shown without its constant columns, "every row: name value; …")``: a column that holds
    one value in every row of a table of ``min_rows`` or more says it once, in the caption. A
    table of fewer rows keeps every column (two equal cells compare, they do not repeat)."""
    if len(shown) < min_rows or shown.shape[1] < 2:
        return shown, ""
    const = [c for c in shown.columns if shown[c].nunique(dropna=False) == 1]
    const = const[: shown.shape[1] - 1]  # a table keeps at least one column
    if not const:
        return shown, ""
    return shown.drop(columns=const), "every row: " + "; ".join(f"{c} {shown[c].iloc[0]}" for c in const)


class Table:
    """A rendered table for ``display``: HTML for the page, aligned plain text for nbval.
    Constant columns go into the caption (:func:`constant_columns`)."""

    def __init__(self, df: pd.DataFrame, percent: Iterable[str] = (), rename: dict | None = None,
                 columns: list[str] | None = None, caption: str | None = None):
        shown = format_frame(df, percent=tuple(percent), rename=rename, columns=columns)
        shown, every = constant_columns(shown)
        if every:
            caption = f"{caption} ({every})" if caption else every
        self._html = _html(shown, caption)
        self._text = shown.to_string(index=False) if len(shown) else "(no rows)"
        if every:
            self._text += f"\n{every}"

    def _repr_html_(self) -> str:
        return self._html

    def __repr__(self) -> str:
        return self._text


def show(df: pd.DataFrame, percent: Iterable[str] = (), rename: dict | None = None,
         columns: list[str] | None = None, caption: str | None = None) -> None:
    """Display ``df`` as the book's tables look (see :func:`render`)."""
    from IPython.display import display

    display(Table(df, percent=tuple(percent), rename=rename, columns=columns, caption=caption))


def _cell(v) -> str:
    if hasattr(v, "item") and not isinstance(v, (list, tuple)):
        v = v.item()
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return fmt_number(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return plain(str(v))


#: the result files' column and group names as a reader's words (the book's shared name map)
WORDS = {"image_only": "image-only", "text_only": "text-only", "following_ratio": "following ratio",
         "competitor_is_prior": "competitor is the prior", "pearson_r": "Pearson r", "n_failed": "failures",
         "log_odds": "Δ log-odds", "ci_low": "95% low", "ci_high": "95% high", "n_followed": "successes",
         "top_overlap": "top-set overlap", "competitor_share": "answered the competitor", "other_share": "answered neither",
         "measured_exactly": "measured exactly", "arbitration_head": "arbitration head", "random_mean": "random sets, mean",
         "i_nssd": "I_NSSD", "sign_agreement": "sign agreement", "random_p2.5": "random sets, 2.5th percentile",
         "random_p97.5": "random sets, 97.5th percentile", "top_ci_low": "95% low", "top_ci_high": "95% high"}

#: column headers only (never applied inside sentences, where these are ordinary words)
COLUMN_WORDS = {**WORDS, "depth": "relative depth", "draws": "random draws", "alpha": "α", "spearman": "Spearman",
                "pearson": "Pearson", "top": "top heads"}


def plain(text: str) -> str:
    """``text`` with every raw name of :data:`WORDS` (as a whole word) replaced by its words."""
    import re

    return re.sub(r"\b(" + "|".join(map(re.escape, WORDS)) + r")\b", lambda m: WORDS[m.group(1)], str(text))


def inline(d: dict) -> str:
    """``{name: value}`` as one line of a sentence ("paper instructions 96, held-out paraphrases
    192"), each value as the book's tables print it (floats to 3 significant digits), so a page
    never prints a raw dict with every digit."""
    return ", ".join(f"{k} {_cell(v)}" for k, v in d.items())


def _named_index(df: pd.DataFrame) -> bool:
    """A set index that carries data (a named or multi-level one) becomes columns; a default one is dropped."""
    return any(n is not None for n in df.index.names)


def _ci_map(df: pd.DataFrame, percent: Iterable[str]) -> dict[str, tuple[str, str]]:
    """percent column -> its interval columns: its own ``<col>_ci_low/high``, else the plain
    ``ci_low/ci_high`` pair, which qualifies the first percent column only."""
    out: dict[str, tuple[str, str]] = {}
    generic_free = all(c in df.columns for c in CI_COLUMNS)
    for col in percent:
        own = (f"{col}_ci_low", f"{col}_ci_high")
        if all(c in df.columns for c in own):
            out[col] = own
        elif generic_free:
            out[col], generic_free = CI_COLUMNS, False
    return out
