"""The book's one table helper: no index, no cut cells, formatted numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfutils.book import tables


def test_percentages_fold_their_interval_and_floats_are_short():
    df = pd.DataFrame({"condition": ["conflict", "control"], "following_ratio": [0.966667, np.nan],
                       "ci_low": [0.931, np.nan], "ci_high": [0.986, np.nan], "margin": [2.3456789, -0.0001234],
                       "n": [30, 12]}, index=[5, 9])
    out = tables.format_frame(df, percent=["following_ratio"], rename={"following_ratio": "following (95% CI)"})
    assert list(out.columns) == ["condition", "following (95% CI)", "margin", "n"]
    assert out.iloc[0].tolist() == ["conflict", "96.7% [93.1, 98.6]", "2.35", "30"]
    assert out.iloc[1].tolist() == ["control", "—", "-0.00012", "12"]
    # large floats as whole numbers with separators, never in exponent notation
    assert [tables.fmt_number(x) for x in (3891.4, 999.44, -12345.6, 2917.0)] == ["3,891", "999", "-12,346", "2,917"]


def test_the_generic_interval_qualifies_one_column_and_own_intervals_win():
    df = pd.DataFrame({"a": [0.5], "b": [0.25], "b_ci_low": [0.2], "b_ci_high": [0.3], "ci_low": [0.4], "ci_high": [0.6]})
    out = tables.format_frame(df, percent=["a", "b"])
    assert out.iloc[0].tolist() == ["50.0% [40.0, 60.0]", "25.0% [20.0, 30.0]"]


def test_html_has_no_index_and_whole_escaped_cells():
    long = "text-following: 0.16 (below chance) " * 4
    html = tables.render(pd.DataFrame({"claim": [long], "ours": ["<b>"]}, index=[7]))
    assert long.strip() in html and "…" not in html and "&lt;b&gt;" in html
    assert "<th></th>" not in html and ">7<" not in html  # no index column


def test_a_pivot_shows_its_index_as_columns_and_flat_headers():
    df = pd.DataFrame({"edge": ["a", "a", "b"], "target": ["image", "text", "image"], "v": [1.0, 2.0, 3.0]})
    pivot = df.pivot_table(index="edge", columns="target", values=["v"])
    out = tables.format_frame(pivot)
    assert list(out.columns) == ["edge", "v image", "v text"]
    assert out.iloc[1].tolist() == ["b", "3", "—"]


def test_plain_text_view_for_nbval_is_stable():
    t = tables.Table(pd.DataFrame({"x": [0.123456]}))
    assert repr(t) == "    x\n0.123" and "mf-table" in t._repr_html_()


def test_inline_prints_a_dict_as_a_sentence_part():
    import numpy as np

    from mfutils.book.tables import inline

    assert inline({"paper instructions": 96, "held-out paraphrases": 192}) == "paper instructions 96, held-out paraphrases 192"
    assert inline({"image": np.float32(0.0018234), "text": 0.0181234, "none": None}) == "image 0.00182, text 0.0181, none —"


def test_plain_words_replace_raw_names_only_as_whole_words():
    from mfutils.book.tables import plain

    assert plain("controls: image_only 1.00 → 0.75, text_only 1.00") == "controls: image-only 1.00 → 0.75, text-only 1.00"
    assert plain("my_image_only_thing") == "my_image_only_thing"


def test_raw_column_names_become_words_and_constant_columns_go_to_the_caption():
    df = pd.DataFrame({"measure": ["image_only", "text_only", "MF image"], "n_failed": [3, 4, 5], "depth": [0.1, 0.2, 0.3],
                       "draws": [50, 50, 50]})
    t = tables.Table(df, caption="blocking")
    assert "image_only" not in t._repr_html_() and "image-only" in t._repr_html_()
    assert "<th>failures</th>" in t._repr_html_() and "<th>relative depth</th>" in t._repr_html_()
    assert "<caption>blocking (every row: random draws 50)</caption>" in t._repr_html_()
    assert repr(t).endswith("every row: random draws 50")
    # two rows compare, they do not repeat: a short table keeps its columns
    assert "random draws" in tables.Table(df.head(2))._repr_html_().split("</thead>")[0]
    # words inside sentences stay words
    assert tables.plain("at depth 0.78 over 50 draws") == "at depth 0.78 over 50 draws"
