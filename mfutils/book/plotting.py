"""Figures: one palette (image vs text), readable at page width, CI bands, labelled axes.

Readable means: drawn :data:`WIDTH` inches wide, the width of the book's page column, at
:data:`DPI`, with no text under :data:`MIN_FONT_PT` points, so a figure shown at page width
keeps its point sizes. :func:`check_readable` enforces it when a chapter saves a figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt  # a kernel shows figures inline; a script without a display gets Agg
import pandas as pd
import seaborn as sns

from mfutils.findings.rules import PAPER_FLAT

#: One colour per modality across the whole book.
PALETTE = {"image": "#1f77b4", "text": "#d62728", "Vision Following": "#1f77b4", "Text Following": "#d62728"}
PAPER_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.4}
#: inches; the page column is about 676 CSS px (7.0 in at 96 px per inch)
WIDTH = 7.0
DPI = 150
MIN_FONT_PT = 8.0


class UnreadableFigureError(ValueError):
    """A figure with text too small or a width beyond the page column."""


def setup() -> None:
    """Seaborn theme and deterministic PNG output for every chapter."""
    sns.set_theme(context="notebook", style="whitegrid")
    # verdict and rule tables hold sentences: never cut a cell at pandas' default 50 characters
    pd.set_option("display.max_colwidth", None)
    plt.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "svg.hashsalt": "mfutils", "figure.max_open_warning": 0,
                         "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "xtick.labelsize": 8.5,
                         "ytick.labelsize": 8.5, "legend.fontsize": 8.5, "legend.title_fontsize": 9,
                         "figure.titlesize": 10, "figure.labelsize": 9})


def check_readable(fig) -> None:
    """Raise :class:`UnreadableFigureError` if ``fig`` is wider than the page column or any
    visible text in it is smaller than :data:`MIN_FONT_PT` points."""
    from matplotlib.text import Text

    width = fig.get_size_inches()[0]
    problems = [f"{width:.2f} in wide (the page column is {WIDTH} in)"] if width > WIDTH + 1e-6 else []
    small = sorted({(round(t.get_fontsize(), 1), t.get_text()[:30]) for t in fig.findobj(Text)
                    if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT - 1e-6})
    if small:
        problems.append(f"{len(small)} text(s) under {MIN_FONT_PT:g} pt, e.g. " + "; ".join(f"{s} pt {t!r}" for s, t in small[:4]))
    if problems:
        raise UnreadableFigureError("figure not readable at page width: " + "; ".join(problems))


def show(fig) -> None:
    """Check ``fig`` (:func:`check_readable`) and show it: for figures a page draws without saving."""
    check_readable(fig)
    plt.show()


def example_panels(items: list, ncols: int = 2, wrap: int = 44):
    """Conflict items as the model sees them: each image, titled with the instructed modality,
    above its text context, instruction, question and the answer each modality gives."""
    import textwrap

    from mfutils.models.loading import load_image

    nrows = -(-len(items) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, 3.3 * nrows), squeeze=False)
    for ax, it in zip(axes.ravel(), items):
        ax.imshow(load_image(it), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"told to follow the {it.target}" if it.target else "no instruction",
                     color=PALETTE.get(it.target, "black"))
        follow = it.answer_image if it.target == "image" else it.answer_text
        lines = [textwrap.fill(f"text: {it.context}", wrap), textwrap.fill(f"instruction: {it.instruction}", wrap),
                 f"Q: {it.question}", f"image says {it.answer_image}; text says {it.answer_text}",
                 f"instructed answer: {follow}"]
        ax.set_xlabel("\n".join(lines), loc="left", fontsize=MIN_FONT_PT)
    for ax in axes.ravel()[len(items):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def token_label(token: str) -> str:
    """A token as a figure's tick label: its word without the leading space, or, for a token of
    whitespace only, its escaped form (``"\\n"``) or ``(space)``, never an empty label."""
    return token.strip() or repr(token)[1:-1].replace(" ", "") or "(space)"


def direction_label(target: str) -> str:
    return {"image": "Vision Following", "text": "Text Following"}.get(target, target)


def hbar_with_ci(ax, table: pd.DataFrame, label: str, value: str = "following_ratio", hue: str | None = None,
                 xlabel: str = ""):
    """Horizontal bars of ``value`` (a share in [0, 1]) with ``ci_low``/``ci_high`` error bars,
    one per row, labelled by ``label`` (long labels stay readable, unlike rotated x tick labels;
    the book draws no vertical bar chart). Each bar carries its value as a percentage, so a
    0% bar still says something."""
    colours = [PALETTE.get(str(table[hue].iloc[i]) if hue else "", "0.5") for i in range(len(table))]
    y = range(len(table))
    ax.barh(y, table[value], color=colours, alpha=0.85)
    err = [table[value] - table["ci_low"], table["ci_high"] - table[value]]
    ax.errorbar(table[value], y, xerr=err, fmt="none", ecolor="black", capsize=2, linewidth=1)
    for i, v in enumerate(table[value]):
        if pd.isna(v):
            continue
        inside = v > 0.8  # near the right edge the label goes inside the bar, left of its error bar
        lo, hi = (v if pd.isna(x) else float(x) for x in (table["ci_low"].iloc[i], table["ci_high"].iloc[i]))
        ax.text(min(v, lo) - 0.02 if inside else max(v, hi) + 0.015, i, f"{v:.0%}",
                va="center", ha="right" if inside else "left", color="white" if inside else "black",
                fontsize=MIN_FONT_PT)
    ax.set_yticks(list(y))
    ax.set_yticklabels(table[label].astype(str).tolist())
    ax.set_xlabel(xlabel or value)
    return ax


def hbar_panels(table: pd.DataFrame, group: str, label: str, value: str = "following_ratio", hue: str | None = None,
                xlabel: str = "", title: str = "", xlim: tuple[float, float] = (0, 1.02)):
    """:func:`hbar_with_ci` in one panel per ``group`` (stacked, a shared x axis, each titled by
    its group), so that each bar's label is only what differs within its group. ``table`` is
    bottom to top, as for ``barh``; the group seen last is the top panel. Returns the figure."""
    groups = list(dict.fromkeys(table[group]))[::-1]
    sizes = [int((table[group] == g).sum()) for g in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(WIDTH, 0.3 * sum(sizes) + 0.42 * len(groups) + 0.9), sharex=True,
                             gridspec_kw={"height_ratios": sizes}, squeeze=False)
    for ax, g in zip(axes[:, 0], groups):
        hbar_with_ci(ax, table[table[group] == g].reset_index(drop=True), label, value, hue)
        ax.set_xlabel("")
        ax.set_title(str(g), loc="left")
    axes[-1, 0].set_xlabel(xlabel or value)
    axes[-1, 0].set_xlim(*xlim)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def scale_of(values) -> float:
    """The largest |value| (NaN ignored), or 1 when there is none: a factor to divide a curve by."""
    import numpy as np

    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) and v.max() > 0 else 1.0


def normalised(df: pd.DataFrame, value: str, also: list[str] = ()) -> pd.DataFrame:
    """``df`` (sorted along the curve) with ``value`` and the ``also`` columns divided by
    |``value``| at the curve's last point, so two models' curves on different scales end at ±1
    and share one zero. The factor is in ``.attrs["scale"]`` (1 when the last value is 0)."""
    out = df.copy()
    scale = scale_of(df[value].iloc[-1:])
    for col in [value, *also]:
        out[col] = df[col] / scale
    out.attrs["scale"] = scale
    return out


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


#: legend names of the shipped organisms; any other model goes by its id's last part
SHORT_NAMES = {"pretrained-organism": "pretrained organism", "gemma-organism": "Gemma organism", "organism": "tiny organism"}


def model_name(model_id: str) -> str:
    """A short legend name for ``model_id``: "pretrained organism", "tiny organism", or the
    last part of a Hub id or folder ("llava-1.5-7b-hf")."""
    return SHORT_NAMES.get(model_id, str(model_id).rstrip("/").split("/")[-1])


#: inches: a curve panel's least height, about 320 CSS px where the figure fills the page column
PANEL_IN = 3.3
#: when our curve's largest |value| is this many times the paper's (or the paper's ours), the
#: paper's curve gets its own axis: on a shared one the smaller curve lies flat on zero
OWN_AXIS_RATIO = 5.0


def needs_own_axis(ours, paper) -> bool:
    """Whether two curves' scales differ by :data:`OWN_AXIS_RATIO` or more (either way)."""
    a, b = scale_of(ours), scale_of(paper)
    return max(a, b) >= OWN_AXIS_RATIO * min(a, b)


def align_zero(ax, other) -> None:
    """Set ``other``'s y limits so that its zero sits at the height of ``ax``'s (twin axes)."""
    lo, hi = ax.get_ylim()
    olo, ohi = other.get_ylim()
    lo, hi = min(lo, -1e-12), max(hi, 1e-12)
    f = -lo / (hi - lo)  # where zero sits on ax, from the bottom
    span = max(-olo / f if f > 0 else 0.0, ohi / (1 - f) if f < 1 else 0.0, 1e-12)
    other.set_ylim(-f * span, (1 - f) * span)


def curves_vs_paper(curve: pd.DataFrame, paper: pd.DataFrame, edges: list[str], value: str = "i_nssd",
                    ylabel: str = "I_NSSD (log ratio of binary p_follow)", title: str = "",
                    band: tuple[float, float] | None = None, model: str = "ours"):
    """One panel per edge (two per row, each :data:`PANEL_IN` tall), both directions in it: ours
    solid (95% CI band where the curve has one), the paper's dashed in the same colour
    (Qwen2.5-VL-7B), on relative depth. Where the two differ in scale by :data:`OWN_AXIS_RATIO`
    or more, the paper's curves get their own right-hand axis with its zero aligned to ours (the
    panel says so), so that both stay visible. ``band``: a relative-depth range to shade (a
    rule's pre-registered layer band); ``model``: the name the legend gives our curves
    (:func:`model_name`)."""
    from matplotlib.lines import Line2D

    targets = ["image", "text"]
    ncols = 2 if len(edges) > 1 else 1
    nrows = -(-len(edges) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, PANEL_IN * nrows + 1.2), sharex=True, squeeze=False)
    lo_col, hi_col = ("ci_low", "ci_high") if value == "i_nssd" else (f"{value}_ci_low", f"{value}_ci_high")
    any_paper = False
    for ax, edge in zip(axes.ravel(), edges):
        ours = {t: curve[(curve["edge"] == edge) & (curve["target"] == t)].sort_values("depth") for t in targets}
        theirs = {t: paper_series(paper, edge, t) for t in targets}
        ours_values = pd.concat([c[value] for c in ours.values()])
        paper_values = pd.concat([p["value"] for p in theirs.values()])
        any_paper |= len(paper_values) > 0
        # a paper curve that is flat (≈ 0 everywhere: the claim is "no effect") stays on our axis,
        # where it is flat; magnified on its own, its reading noise would look like an effect
        own = (len(paper_values) > 0 and scale_of(paper_values) >= PAPER_FLAT
               and needs_own_axis(ours_values, paper_values))
        pax = ax.twinx() if own else ax
        for t in targets:
            c = ours[t]
            if not c.empty:
                ci = (lo_col, hi_col) if lo_col in c.columns else (None, None)
                line_with_band(ax, c, "depth", value, *ci, color=PALETTE[t], marker="o", markersize=3)
            p = theirs[t]
            if not p.empty:
                pax.plot(p["depth"], p["value"], color=PALETTE[t], linestyle="--", linewidth=1.4, alpha=0.7)
        if band is not None:
            ax.axvspan(*band, color="0.85", alpha=0.5, linewidth=0)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"{edge.replace(' -/-> ', '→')} cut", fontsize=MIN_FONT_PT + 1)
        ax.xaxis.set_tick_params(labelbottom=True)
        for a in {ax, pax}:  # an offset ("1e-5") above the axis would sit on the panel's title
            a.ticklabel_format(axis="y", style="plain", useOffset=False)
        if own:
            align_zero(ax, pax)
            pax.grid(False)
            pax.set_ylabel("paper (dashed), own scale", color="0.35")
    spare = axes.ravel()[len(edges):]
    for ax in spare:
        ax.set_visible(False)
    handles = [Line2D([], [], color=PALETTE["image"], marker="o", markersize=3, label=f"{model}, vision following"),
               Line2D([], [], color=PALETTE["text"], marker="o", markersize=3, label=f"{model}, text following")]
    if any_paper:
        handles += [Line2D([], [], color=PALETTE["image"], linestyle="--", alpha=0.7, label="paper (Qwen2.5-VL-7B), vision"),
                    Line2D([], [], color=PALETTE["text"], linestyle="--", alpha=0.7, label="paper (Qwen2.5-VL-7B), text")]
    fig.supxlabel("relative depth (layer / number of layers)")
    fig.supylabel(ylabel)
    if title:
        fig.suptitle(title)
    if len(spare):  # the legend takes the grid's empty place
        fig.tight_layout(h_pad=1.6)
        box = spare[0].get_position()
        fig.legend(handles=handles, loc="center", bbox_to_anchor=(box.x0 + box.width / 2, box.y0 + box.height / 2),
                   ncol=1, frameon=False)
        return fig
    height = fig.get_size_inches()[1]
    top = 1 - 0.75 / height  # room for the title and the legend above the grid
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, top + 0.45 / height), ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, top), h_pad=1.6)
    return fig


def training_curve(curve: list[dict], title: str = ""):
    """An organism's training record as two panels: the loss every 10 steps, and the held-out
    monitor's accuracy per group at the evaluation steps. ``curve``: ``training.json``'s rows
    (``step``, ``loss``, optional ``eval``, ``decay_from`` and ``monitor_images``). A dotted
    vertical line marks where the learning rate starts to decay; a dashed one, where the
    monitor switches from images described in text to image tokens."""
    import matplotlib.pyplot as plt

    loss = pd.DataFrame(curve)
    evals = pd.DataFrame([{"step": r["step"], **r["eval"]} for r in curve if "eval" in r])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.8))
    ax1.plot(loss["step"], loss["loss"], color="0.3", linewidth=0.8)
    ax1.set_xlabel("training step")
    ax1.set_ylabel("cross-entropy (nats)")
    ax1.set_title("training loss")
    styles = {"conflict/image": (PALETTE["image"], "-"), "conflict/text": (PALETTE["text"], "-"),
              "image_only": (PALETTE["image"], ":"), "text_only": (PALETTE["text"], ":")}
    for group, (colour, ls) in styles.items():
        ax2.plot(evals["step"], evals[group], color=colour, linestyle=ls, marker="o", markersize=3, label=group)
    ax2.axhline(0.95, color="0.5", linestyle="--", linewidth=0.8, label="target 95%")
    for r in curve:
        if "decay_from" in r:
            for ax in (ax1, ax2):
                ax.axvline(r["decay_from"], color="0.6", linestyle=":", linewidth=0.8)
            ax1.annotate("learning-rate\ndecay", (r["decay_from"], 0.97), xycoords=("data", "axes fraction"),
                         xytext=(-4, 0), textcoords="offset points", ha="right", va="top", color="0.4")
    tokens = [r["step"] for r in curve if r.get("monitor_images") == "tokens"]
    if tokens and any(r.get("monitor_images") == "described" for r in curve):
        ax2.axvline(tokens[0], color="0.3", linestyle="--", linewidth=0.8)
        ax2.annotate("image\ntokens →", (tokens[0], 0.05), xycoords=("data", "axes fraction"),
                     xytext=(4, 0), textcoords="offset points", ha="left", va="bottom", color="0.3")
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("held-out accuracy (share)")
    ax2.set_title("held-out monitor set")
    if title:
        fig.suptitle(title)
    fig.legend(*ax2.get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig


def route_map(maps: dict[str, pd.DataFrame], marks: pd.DataFrame | None = None, title: str = ""):
    """The route map (issue 41): per model (columns) and direction (rows) a heat map of every
    swept edge (rows, :func:`mfutils.findings.routing.route_map`'s order) against relative depth,
    colour = mean Δ log-odds (symmetric-log scale, linear within the effect threshold, so that
    effects of 0.3 and of 10 both show). ``marks``: the paper's strongest point per edge
    (:func:`mfutils.findings.routing.paper_route_marks`), drawn as a black diamond with its
    value (I_NSSD, the paper's unit)."""
    import numpy as np
    from matplotlib.colors import SymLogNorm

    from mfutils.findings.rules import EFFECT_THRESHOLD, PAPER_FLAT

    names = list(maps)
    edges = list(dict.fromkeys(e for m in maps.values() for e in m["edge"]))
    vmax = max(float(m["log_odds"].abs().max()) for m in maps.values()) or 1.0
    norm = SymLogNorm(linthresh=EFFECT_THRESHOLD, vmin=-vmax, vmax=vmax, base=10)
    fig, axes = plt.subplots(2, len(names), figsize=(WIDTH, 0.28 * len(edges) * 2 + 2.2), squeeze=False,
                             sharey=True)
    image = None
    for j, name in enumerate(names):
        m = maps[name]
        n_layers = int(m["layer"].max()) + 1
        for i, target in enumerate(["image", "text"]):
            ax = axes[i, j]
            grid = np.full((len(edges), n_layers), np.nan)
            for r in m[m["target"] == target].itertuples():
                grid[edges.index(r.edge), int(r.layer)] = r.log_odds
            image = ax.imshow(grid, aspect="auto", cmap="RdBu", norm=norm, extent=(0, 1, len(edges), 0),
                              interpolation="nearest")
            if marks is not None and len(marks):
                # a flat paper curve (≈ 0 everywhere) has no strongest point worth marking
                for r in marks[(marks["target"] == target) & (marks["value"].abs() >= PAPER_FLAT)].itertuples():
                    if r.edge in edges:
                        y = edges.index(r.edge) + 0.5
                        ax.plot(r.depth, y, marker="D", color="black", markersize=4)
                        # on a white ground: a label must stay legible on a dark cell
                        ax.annotate(f"{r.value:+.2f}", (r.depth, y), xytext=(4, 0), textcoords="offset points",
                                    va="center", fontsize=MIN_FONT_PT,
                                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})
            ax.set_yticks(np.arange(len(edges)) + 0.5)
            ax.set_yticklabels([e.replace(" -/-> ", "→") for e in edges])
            ax.set_xlim(0, 1)
            ax.grid(False)
            # side by side, two models' one-line titles run into each other (seen on the front page)
            sep = "\n" if len(names) > 1 else " · "
            ax.set_title(f"{name}{sep}{direction_label(target)}", fontsize=MIN_FONT_PT + 1)
            if i == 1:
                ax.set_xlabel("relative depth")
    # pad: the colour bar must not cover the right panel's last depth tick
    cbar = fig.colorbar(image, ax=axes, shrink=0.8, pad=0.05)
    cbar.set_label("mean Δ log-odds when the edge is cut\n(red: the cut hurts following)")
    if title:
        fig.suptitle(title)
    return fig


def patching_curves(curves: pd.DataFrame, fetch: dict | None = None, title: str = ""):
    """Activation patching across instructions (:func:`mfutils.findings.patching.patch_curves`):
    per direction, the share of answers flipped by patching the instruction tokens and the last
    position, with Wilson intervals, on relative depth; a dotted vertical line at the fetch
    layer of each direction (rule 01-qf), a dashed horizontal one at the rule's flip share."""
    from mfutils.findings.rules import QF_FLIP, depth

    styles = {"instruction": {"linestyle": "-", "marker": "o"}, "last": {"linestyle": "--", "marker": "s"}}
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, PANEL_IN + 1.2), sharey=True)
    for ax, target in zip(axes, ["image", "text"]):
        for site, g in curves[curves["target"] == target].groupby("site"):
            g = g.sort_values("depth")
            ax.plot(g["depth"], g["flipped"], color=PALETTE[target], markersize=3,
                    label=f"patch the {'instruction tokens' if site == 'instruction' else 'last position'}", **styles[site])
            ax.fill_between(g["depth"], g["flipped_ci_low"], g["flipped_ci_high"], color=PALETTE[target], alpha=0.12,
                            linewidth=0)
        if fetch and target in fetch:
            n_layers = int(curves["layer"].max()) + 1
            ax.axvline(float(depth(fetch[target][0], n_layers)), color="0.3", linestyle=":", linewidth=1.2,
                       label="fetch (cue→Last strongest)")
        ax.axhline(QF_FLIP, color="0.6", linestyle="--", linewidth=0.8)
        ax.set_title(direction_label(target))
        ax.set_xlabel("relative depth of the patched layer")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("share of answers flipped")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def mlp_average(avg: pd.DataFrame, paper: pd.DataFrame, model: str):
    """Chapter 3's average MLP contributions (its rebuttal figure, our label A12), 2 × 2: our two
    directions (following solid, competitor dashed in black on top, so that a competitor equal to
    the following curve still shows), the paper's curves on their own axis, and the difference
    following − competitor per layer, ours and the paper's (the paper's on its own right-hand
    axis when the scales differ; :func:`needs_own_axis`). ``avg``: rows ``(target, quantity
    ∈ {follow, comp}, depth, value, ci_low, ci_high)``; ``paper``: A12's rows."""
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 2 * PANEL_IN + 1.0), sharex=True)
    for ax, target in zip(axes[0], ["image", "text"]):
        for q, style, colour, lw in (("follow", "-", PALETTE[target], 2.2), ("comp", "--", "black", 1.1)):
            d = avg[(avg["target"] == target) & (avg["quantity"] == q)].sort_values("depth")
            line_with_band(ax, d, "depth", "value", "ci_low", "ci_high", color=colour, linestyle=style, linewidth=lw,
                           label="following answer" if q == "follow" else "competing answer")
        ax.set_title(f"{model}\n{direction_label(target)}")
        ax.legend(loc="upper left")
    axes[0, 0].set_ylabel("MLP logit change")
    series = {"follow": "MLP_Contrbution_Following_modality", "comp": "MLP_Contrbution_Competitor_modality"}
    ax = axes[1, 0]
    for q, style in (("follow", "-"), ("comp", "--")):
        p = paper[paper["series"] == series[q]].sort_values("depth")
        ax.plot(p["depth"], p["value"], color="0.35", linestyle=style,
                label="following answer" if q == "follow" else "competing answer")
    ax.set_title("paper (Qwen2.5-VL-7B), its own scale")
    ax.set_ylabel("MLP logit change")
    ax.legend(loc="upper left")
    ax = axes[1, 1]
    diffs = []
    for target in ["image", "text"]:
        d = avg[avg["target"] == target].pivot_table(index="depth", columns="quantity", values="value")
        diffs.append(d["follow"] - d["comp"])
        ax.plot(d.index, d["follow"] - d["comp"], color=PALETTE[target], marker="o", markersize=3,
                label=f"{model}, {direction_label(target).lower()}")
    f = paper[paper["series"] == series["follow"]].set_index("depth")["value"]
    c = paper[paper["series"] == series["comp"]].set_index("depth")["value"]
    gap = (f - c).dropna()
    own = needs_own_axis(pd.concat(diffs), gap) and scale_of(gap) >= PAPER_FLAT
    pax = ax.twinx() if own else ax
    pax.plot(gap.index, gap.to_numpy(), color="0.35", linestyle="--", label="paper" + (" (right axis)" if own else ""))
    ax.axhline(0, color="black", linewidth=0.6)
    if own:
        align_zero(ax, pax)
        pax.grid(False)
        pax.set_ylabel("paper, own scale", color="0.35")
    ax.set_title("following − competing, per layer")
    handles = ax.get_legend_handles_labels()[0] + (pax.get_legend_handles_labels()[0] if own else [])
    ax.legend(handles=handles, loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("relative depth")
    fig.tight_layout()
    return fig


def contributions_failed_followed(contrib: pd.DataFrame, paper: pd.DataFrame):
    """Chapter 3's attention (solid) and MLP (dashed) contributions to the margin, per direction
    (rows) on failed and followed samples (columns); on the failed panels the paper's curves for
    its failed samples (rebuttal figure, our label A14) in grey, on their own right-hand axis
    when their scale differs from ours (:func:`needs_own_axis`). ``contrib``: rows ``(target,
    outcome, sublayer ∈ {attn, mlp}, quantity = margin, depth, value, ci_low, ci_high, n)``."""
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 2 * PANEL_IN + 1.2), sharex=True)
    for i, target in enumerate(["image", "text"]):
        for j, outcome in enumerate(["failed", "followed"]):
            ax = axes[i, j]
            mine = contrib[(contrib["target"] == target) & (contrib["outcome"] == outcome) & (contrib["quantity"] == "margin")]
            for sub, style in (("attn", "-"), ("mlp", "--")):
                d = mine[mine["sublayer"] == sub].sort_values("depth")
                if len(d) and d["n"].iloc[0] > 0:
                    line_with_band(ax, d, "depth", "value", "ci_low", "ci_high", color=PALETTE[target], linestyle=style)
            if outcome == "failed":
                p = paper[paper["direction"] == direction_label(target)]
                own = len(p) and len(mine) and needs_own_axis(mine["value"], p["value"]) and scale_of(p["value"]) >= PAPER_FLAT
                pax = ax.twinx() if own else ax
                for series, style in (("Attention", "-"), ("MLP", "--")):
                    s = p[p["series"] == series].sort_values("depth")
                    pax.plot(s["depth"], s["value"], color="0.5", linestyle=style, linewidth=1.1)
                if own:
                    align_zero(ax, pax)
                    pax.grid(False)
                    pax.set_ylabel("paper (grey), own scale", color="0.35")
            ax.axhline(0, color="black", linewidth=0.6)
            n = int(mine["n"].iloc[0]) if len(mine) else 0
            ax.set_title(f"{direction_label(target)}, {outcome} (n={n})")
            if j == 0:
                ax.set_ylabel("margin change (logit)")
            if i == 1:
                ax.set_xlabel("relative depth")
    fig.legend(handles=[Line2D([], [], color="0.2", linestyle="-", label="attention"),
                        Line2D([], [], color="0.2", linestyle="--", label="MLP"),
                        Line2D([], [], color="0.5", linewidth=1.1, label="grey: paper, failed samples (Qwen2.5-VL-7B)")],
               loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
