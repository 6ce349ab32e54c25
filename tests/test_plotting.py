"""Figures must be readable at page width: the check every saved figure passes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mfutils.book import plotting  # noqa: E402


def test_small_text_and_wide_figures_are_refused():
    plotting.setup()
    fig, ax = plt.subplots(figsize=(plotting.WIDTH, 2))
    ax.plot([0, 1], [0, 1], label="a curve")
    ax.legend()
    plotting.check_readable(fig)  # the theme's sizes pass
    ax.set_title("tiny", fontsize=6)
    with pytest.raises(plotting.UnreadableFigureError, match="6.0 pt 'tiny'"):
        plotting.check_readable(fig)
    wide, _ = plt.subplots(figsize=(plotting.WIDTH + 2, 2))
    with pytest.raises(plotting.UnreadableFigureError, match="9.00 in wide"):
        plotting.check_readable(wide)
    plt.close("all")


def test_the_knockout_grid_is_readable():
    plotting.setup()
    edges = ["Vision -/-> Text", "TextCtx -/-> Instruction", "Vision -/-> Last"]
    curve = pd.DataFrame([{"edge": e, "target": t, "depth": (l + 0.5) / 8, "i_nssd": -0.1 * l, "ci_low": -0.1 * l - 0.05,
                           "ci_high": -0.1 * l + 0.05} for e in edges for t in ("image", "text") for l in range(8)])
    paper = pd.DataFrame(columns=["series", "direction", "layer", "depth", "value"])
    fig = plotting.curves_vs_paper(curve, paper, edges, title="a title",
                                   model=plotting.model_name("pretrained-organism"))
    plotting.check_readable(fig)
    assert fig.get_size_inches()[0] == plotting.WIDTH and fig.dpi == plotting.DPI
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["pretrained organism, vision following", "pretrained organism, text following"]
    plt.close("all")


def test_model_names_for_legends():
    assert plotting.model_name("organism") == "tiny organism"
    assert plotting.model_name("llava-hf/llava-1.5-7b-hf") == "llava-1.5-7b-hf"
    assert plotting.model_name("/models/Qwen2.5-VL-7B-Instruct/") == "Qwen2.5-VL-7B-Instruct"


def test_normalised_curves_share_one_zero_and_say_their_factor():
    d = pd.DataFrame({"depth": [0.1, 0.5, 0.9], "value": [0.0, -1.0, -4.0], "ci_low": [0, -2, -5], "ci_high": [0, 0, -3]})
    n = plotting.normalised(d, "value", ["ci_low", "ci_high"])
    assert n["value"].tolist() == [0.0, -0.25, -1.0] and n.attrs["scale"] == 4.0 and n["ci_low"].iloc[-1] == -1.25
    assert plotting.scale_of([float("nan"), 0.0]) == 1.0 and plotting.scale_of([-3, 2]) == 3.0


def test_chapter0s_bars_are_grouped_by_condition_with_short_labels():
    import pandas as pd

    from mfutils.findings import behaviour

    rows = []
    for cond in ("held-out combinations", "paper instructions"):
        rows += [{"condition": cond, "kind": "conflict", "target": t} for t in ("image", "text")]
        rows += [{"condition": cond + behaviour.DERIVED_SUFFIX, "kind": f"{m}_only", "target": "-"} for m in ("image", "text")]
        rows.append({"condition": cond + " (kept by control filter)", "kind": "filter", "target": "-"})
    summary = pd.DataFrame(rows).assign(n=10, following_ratio=0.9, ci_low=0.7, ci_high=1.0)
    d = behaviour.figure_rows(summary)
    assert len(d) == 8 and set(d["group"]) == {"held-out combinations", "paper instructions"}
    top = d.iloc[::-1]  # barh draws bottom to top
    assert top["short"].tolist()[:4] == ["conflict → image", "conflict → text", "image-only, derived", "text-only, derived"]
    assert top["hue"].tolist()[:4] == ["image", "text", "image", "text"]
    fig = plotting.hbar_panels(d, group="group", label="short", hue="hue", title="t")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in panels] == ["held-out combinations", "paper instructions"]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == d[d["group"] == "held-out combinations"]["short"].tolist()
    plotting.check_readable(fig)
    plt.close(fig)


def test_token_labels_are_words_never_blank():
    from mfutils.book.plotting import token_label

    assert [token_label(" focus"), token_label("\n"), token_label(" ")] == ["focus", "\\n", "(space)"]


def _curve(edge, scale, n=8):
    return pd.DataFrame([{"edge": edge, "target": t, "depth": (l + 0.5) / n, "log_odds": -scale * l / n}
                         for t in ("image", "text") for l in range(n)])


def _paper(edge, scale, n=8):
    return pd.DataFrame([{"series": edge, "direction": plotting.direction_label(t), "layer": l, "depth": (l + 0.5) / n,
                          "value": -scale * l / n} for t in ("image", "text") for l in range(n)])


def test_a_paper_curve_ten_times_smaller_gets_its_own_axis_with_zero_aligned_unless_it_is_flat():
    plotting.setup()
    edge = "Vision -/-> Instruction"
    fig = plotting.curves_vs_paper(_curve(edge, 10), _paper(edge, 1), [edge], value="log_odds")
    twins = [ax for ax in fig.axes if ax.get_ylabel().startswith("paper")]
    assert len(twins) == 1
    ours = fig.axes[0]
    zero = lambda ax: (0 - ax.get_ylim()[0]) / (ax.get_ylim()[1] - ax.get_ylim()[0])
    assert abs(zero(ours) - zero(twins[0])) < 1e-9
    assert ours.bbox.height / fig.dpi >= 0.9 * plotting.PANEL_IN - 1.0  # a panel's plotting area, minus its labels
    # the same scales: one axis; a flat paper curve (|value| < PAPER_FLAT): one axis too
    for paper in (_paper(edge, 10), _paper(edge, 0.01)):
        fig = plotting.curves_vs_paper(_curve(edge, 10), paper, [edge], value="log_odds")
        assert not [ax for ax in fig.axes if ax.get_ylabel().startswith("paper")]
    plt.close("all")
