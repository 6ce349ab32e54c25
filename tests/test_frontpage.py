"""The front page's answer first: badges per finding and model, tallies kept apart by kind of
row, every verdict word in use defined, the full table with its verdicts in their own columns."""

from __future__ import annotations

from mfutils.book import chapters, frontpage
from mfutils.runs.results import RunWriter
from tests.helpers import fill_declared


def _finish(spec, verdicts):
    w = RunWriter(spec)
    w.write_json("results.json", {"verdicts": verdicts})
    fill_declared(w)
    w.finish()


def _runs(tmp_path):
    out = str(tmp_path)
    book = chapters.chapter_spec("04_sparse_heads", output_dir=out)
    other = chapters.chapter_spec("04_sparse_heads", output_dir=out, **chapters.comparison_overrides("04_sparse_heads"))
    _finish(book, [{"claim": "A few heads", "rule": "04-sparse", "paper": "5%", "ours": "49%", "verdict": "reproduced"},
                   {"claim": "Fast scorer", "rule": "04-fast", "paper": "—", "ours": "0.5", "verdict": "not met"}])
    _finish(other, [{"claim": "A few heads", "rule": "04-sparse", "paper": "5%", "ours": "3%", "verdict": "not reproduced"}])
    _finish(chapters.chapter_spec("00_behaviour", output_dir=out),
            [{"claim": "follows the image", "paper": "—", "ours": "97%", "verdict": "met"}])
    return out


def test_tallies_keep_the_paper_claims_the_models_checks_and_our_own_claims_apart(tmp_path):
    out = _runs(tmp_path)
    book = chapters.summary_table(output_dir=out)
    t = frontpage.tallies(book)
    paper, checks, own = (t[k] for k in frontpage.KINDS)
    assert paper["reproduced"] == 1 and paper["not run"] == 4  # chapters 1, 2, 3, 5 have no run
    assert checks == {"met": 1}
    assert own == {"not met": 1}
    text = frontpage.tally_markdown(output_dir=out)
    assert "the book's own claims: 1 not met" in text and "the model's own checks (chapter 0): 1 met" in text


def test_the_glance_gives_each_finding_a_badge_per_model(tmp_path):
    out = _runs(tmp_path)
    g = frontpage.glance(output_dir=out)
    text = repr(g)
    assert "holds (1 of 1 reproduced)" in text and "does not hold (0 of 1 reproduced)" in text
    assert "not run (no finished run)" in text
    # the last column compares the models finding by finding
    four = [line for line in text.splitlines() if line.lstrip().startswith("4 ·")][0]
    assert four.rstrip().endswith("holds in SmolLM2 only")
    html = g._repr_html_()
    assert html.count('class="mf-badge"') == 12  # six findings x two models
    assert frontpage.BETWEEN in text.splitlines()[0]
    assert frontpage.COLOURS["holds"][0] in html and frontpage.COLOURS["does not hold"][0] in html


def test_the_families_table_has_a_row_per_paper_finding_saying_where_it_holds(tmp_path):
    out = _runs(tmp_path)
    t = frontpage.between_table(output_dir=out).set_index("finding")
    assert len(t) == 5 and not any(f.startswith("0 ·") for f in t.index)
    four = t.loc[[f for f in t.index if f.startswith("4 ·")][0]]
    assert four["between the families"] == "holds in SmolLM2 only"
    assert four.iloc[0] == "holds (1 of 1 reproduced)" and four.iloc[1] == "does not hold (0 of 1 reproduced)"
    one = t.loc[[f for f in t.index if f.startswith("1 ·")][0]]
    assert one["between the families"] == "run in neither"


def test_every_word_in_use_is_defined_and_no_other(tmp_path):
    out = _runs(tmp_path)
    words = frontpage.words_in_use(output_dir=out)
    assert {"reproduced", "not reproduced", "met", "not met", "holds", "does not hold", "not run"} <= set(words)
    assert "partly" not in words
    legend = frontpage.legend(output_dir=out)
    assert all(f"**{w}**" in legend for w in words) and "see the chapter" not in legend


def test_the_claims_table_gives_each_model_a_verdict_column(tmp_path):
    out = _runs(tmp_path)
    t = frontpage.claims_table(output_dir=out)
    head = repr(t).splitlines()[0]
    from mfutils.book.comparison import front_name

    compared = front_name(chapters.comparison_overrides("04_sparse_heads")["model_id"])
    assert "SmolLM2 organism: verdict" in head and f"{compared}: measured" in head
    assert frontpage.PAPER_COLUMN.split(" (")[0] in head
    row = [line for line in repr(t).splitlines() if "A few heads" in line][0]
    assert "reproduced" in row and "49%" in row and "not reproduced" in row and "3%" in row


def test_the_front_page_names_both_models_from_the_comparison_parameters(monkeypatch):
    from mfutils.book import comparison

    monkeypatch.setattr(comparison, "comparison_overrides", lambda chapter: {"model_id": "gemma-organism"})
    s = comparison.models_sentence()
    assert s.startswith("The book's model is the **SmolLM2 organism**, a small LLaVA around SmolLM2-135M-Instruct")
    assert "for comparison, runs the **Gemma organism**, the same build around Gemma-3-270M" in s


def test_the_organism_page_reads_each_organisms_chapter0(tmp_path):
    from mfutils.book import organisms

    out = str(tmp_path)
    assert list(organisms.chapter0_readings(output_dir=out)["held-out combinations: image"]) == ["no finished run"] * 2
    summary = [{"condition": "held-out combinations", "kind": "conflict", "target": t, "n": n, "following_ratio": f,
                "ci_low": f - 0.1, "ci_high": min(f + 0.1, 1.0)} for t, n, f in (("image", 33, 0.82), ("text", 43, 0.86))]
    trained = [{"direction": "image", "instruction": "Use only the image to answer.", "n": 16, "following_ratio": 0.0,
                "ci_low": 0.0, "ci_high": 0.0, "competitor_share": 1.0, "note": ""},
               {"direction": "text", "instruction": "Go by the text.", "n": 16, "following_ratio": 1.0,
                "ci_low": 1.0, "ci_high": 1.0, "competitor_share": 0.0, "note": ""}]
    w = RunWriter(chapters.chapter_spec("00_behaviour", output_dir=out, **chapters.comparison_overrides("00_behaviour")))
    w.write_json("results.json", {"summary": summary, "trained_phrasings": trained, "verdicts": []})
    fill_declared(w)
    w.finish()
    t = organisms.chapter0_readings(output_dir=out)
    assert list(t["organism"]) == ["SmolLM2 organism", "Gemma organism"]
    gemma = t.iloc[1]
    assert gemma["held-out combinations: image"] == "82% [72%, 92%] of 33"
    assert gemma["held-out combinations: text"] == "86% [76%, 96%] of 43"
    assert gemma["training sentences"].startswith("1 of the 2 training sentences is followed on fewer than 80%")
    assert "“Use only the image to answer.” 0% (other modality 100%)" in gemma["training sentences"]
    assert t.iloc[0]["held-out combinations: image"] == "no finished run"
