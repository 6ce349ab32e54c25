"""Figures: one palette (image vs text), readable at page width, CI bands, labelled axes."""

from __future__ import annotations

import matplotlib.pyplot as plt  # a kernel shows figures inline; a script without a display gets Agg
import pandas as pd
import seaborn as sns

#: One colour per modality across the whole book.
PALETTE = {"image": "#1f77b4", "text": "#d62728", "Vision Following": "#1f77b4", "Text Following": "#d62728"}
PAPER_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.4}
WIDTH = 7.0


def setup() -> None:
    """Seaborn theme and deterministic PNG output for every chapter."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    # verdict and rule tables hold sentences: never cut a cell at pandas' default 50 characters
    pd.set_option("display.max_colwidth", None)
    plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 110, "svg.hashsalt": "mfutils", "figure.max_open_warning": 0})


def direction_label(target: str) -> str:
    return {"image": "Vision Following", "text": "Text Following"}.get(target, target)


def bar_with_ci(ax, summary: pd.DataFrame, x: str, y: str = "following_ratio", hue: str | None = None, ylabel: str = ""):
    """Bars of ``y`` with ``ci_low``/``ci_high`` error bars (one bar per row of ``summary``)."""
    labels = summary[x].astype(str).tolist()
    colours = [PALETTE.get(str(summary[hue].iloc[i]) if hue else "", "0.5") for i in range(len(summary))]
    ax.bar(range(len(summary)), summary[y], color=colours, alpha=0.85)
    err = [summary[y] - summary["ci_low"], summary["ci_high"] - summary[y]]
    ax.errorbar(range(len(summary)), summary[y], yerr=err, fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.set_xticks(range(len(summary)))
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel or y)
    return ax


def hbar_with_ci(ax, table: pd.DataFrame, label: str, value: str = "following_ratio", hue: str | None = None,
                 xlabel: str = ""):
    """Horizontal bars of ``value`` with ``ci_low``/``ci_high`` error bars, one per row, labelled
    by ``label`` (long labels stay readable, unlike rotated x tick labels)."""
    colours = [PALETTE.get(str(table[hue].iloc[i]) if hue else "", "0.5") for i in range(len(table))]
    y = range(len(table))
    ax.barh(y, table[value], color=colours, alpha=0.85)
    err = [table[value] - table["ci_low"], table["ci_high"] - table[value]]
    ax.errorbar(table[value], y, xerr=err, fmt="none", ecolor="black", capsize=2, linewidth=1)
    ax.set_yticks(list(y))
    ax.set_yticklabels(table[label].astype(str).tolist(), fontsize=8)
    ax.set_xlabel(xlabel or value)
    return ax


def line_with_band(ax, df: pd.DataFrame, x: str, y: str, lo: str | None = None, hi: str | None = None, label: str = "",
                   color: str | None = None, **kw):
    """A line of ``y`` over ``x`` with a shaded ``[lo, hi]`` band when given."""
    ax.plot(df[x], df[y], label=label, color=color, **kw)
    if lo and hi:
        ax.fill_between(df[x], df[lo], df[hi], color=color, alpha=0.2, linewidth=0)
    return ax


_PAPER_NAMES = {"TextCtx -/-> Instruction": ["TextCtx -/-> Instruction", "TextCtx -/-> Modality Inst"],
                "Vision -/-> TextCtx": ["Vision -/-> Text Context"],
                "Vision -/-> Instruction": ["Vision -/-> Instruction", "Vision -/-> Modality Inst"],
                "TextCtx -/-> Constraint": ["TextCtx -/-> Constraint Inst"],
                "Vision -/-> Constraint": ["Vision -/-> Constraint Inst"]}


def paper_series(paper: pd.DataFrame, edge: str, target: str) -> pd.DataFrame:
    """The paper's curve for one of our edge names and directions (empty if the paper has none)."""
    names = _PAPER_NAMES.get(edge, [edge])
    d = paper[(paper["series"].isin(names)) & (paper["direction"] == direction_label(target))]
    return d.sort_values("layer")


def curves_vs_paper(curve: pd.DataFrame, paper: pd.DataFrame, edges: list[str], value: str = "i_nssd",
                    ylabel: str = "I_NSSD (log ratio of binary p_follow)", title: str = "",
                    band: tuple[float, float] | None = None):
    """Grid: one row per direction, one column per edge; ours (solid, 95% CI band where the
    curve has one) and the paper's (dashed grey, Qwen2.5-VL-7B) on relative depth. ``band``:
    a relative-depth range to shade (a rule's pre-registered layer band)."""
    targets = ["image", "text"]
    fig, axes = plt.subplots(len(targets), len(edges), figsize=(WIDTH, 1.9 * len(targets) + 0.6), sharex=True,
                             squeeze=False)
    for i, target in enumerate(targets):
        for j, edge in enumerate(edges):
            ax = axes[i, j]
            c = curve[(curve["edge"] == edge) & (curve["target"] == target)].sort_values("depth")
            if not c.empty:
                lo, hi = ("ci_low", "ci_high") if value == "i_nssd" else (f"{value}_ci_low", f"{value}_ci_high")
                ci = (lo, hi) if lo in c.columns else (None, None)
                line_with_band(ax, c, "depth", value, *ci, label="organism", color=PALETTE[target], marker="o",
                               markersize=3)
            if band is not None:
                ax.axvspan(*band, color="0.85", alpha=0.5, linewidth=0)
            p = paper_series(paper, edge, target)
            if not p.empty:
                ax.plot(p["depth"], p["value"], label="paper", **PAPER_STYLE)
            ax.axhline(0, color="black", linewidth=0.6)
            if i == 0:
                ax.set_title(edge, fontsize=8)
            if j == 0:
                ax.set_ylabel(direction_label(target), fontsize=8)
            ax.tick_params(labelsize=6)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=PALETTE["image"], marker="o", markersize=3, label="organism, vision following"),
               Line2D([], [], color=PALETTE["text"], marker="o", markersize=3, label="organism, text following"),
               Line2D([], [], label="paper (Qwen2.5-VL-7B)", **PAPER_STYLE)]
    if paper.empty:
        handles = handles[:2]
    fig.supxlabel("relative depth (layer / number of layers)", fontsize=8)
    fig.supylabel(ylabel, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.95), ncol=3, fontsize=7, frameon=False)
    return fig
