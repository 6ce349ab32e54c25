"""The chapter registry, the front page's generated summary, and the dry run."""

from __future__ import annotations

import pandas as pd
import pytest

from mfutils.book import crossrefs
from mfutils.book import chapters
from mfutils.findings.behaviour import targets_met
from mfutils.book.dryrun import DryRunError, dry_run
from mfutils.findings.head_scores import verdicts as head_verdicts
from mfutils.runs.params import ParameterError
from mfutils.runs.results import RunWriter
from tests.helpers import fill_declared


#: the comparison run's model (notebooks/comparison.yaml)
COMPARED = chapters.comparison_overrides("00_behaviour")["model_id"]

def test_chapter_spec_reads_the_notebook_defaults_and_ignores_other_chapters_parameters():
    spec = chapters.chapter_spec("05_causal_interventions", n_random=3, window=5)
    assert spec.n_random == 3 and spec.n_samples == chapters.notebook_defaults("05_causal_interventions")["n_samples"]
    assert not hasattr(spec, "window")
    with pytest.raises(ParameterError):
        chapters.chapter_spec("07_nope")
    with pytest.raises(ParameterError):
        chapters.chapter_spec("01_shallow_routing", window="wide")


def test_summary_reads_finished_runs_only(tmp_path):
    out = str(tmp_path)
    table = chapters.summary_table(output_dir=out)
    assert set(table["verdict"]) == {"not run"} and len(table) == len(chapters.CHAPTERS)
    spec = chapters.chapter_spec("02_deep_arbitration", output_dir=out)
    w = RunWriter(spec)
    w.write_json("results.json", {"verdicts": [{"claim": "c", "paper": "p", "ours": "0.5 [0.4, 0.6]", "verdict": "partly"}]})
    fill_declared(w)
    unfinished = chapters.summary_table(output_dir=out)
    assert "partly" not in set(unfinished["verdict"])  # an unfinished run is never read
    w.finish()
    row = chapters.summary_table(output_dir=out).query("verdict == 'partly'").iloc[0]
    assert row["ours"] == "0.5 [0.4, 0.6]" and row["command"].startswith("python -m mfutils execute 02")


def test_the_comparison_run_gets_its_own_column_judged_by_the_same_claims(tmp_path, monkeypatch):
    out = str(tmp_path)
    book_spec = chapters.chapter_spec("02_deep_arbitration", output_dir=out)
    tiny = chapters.comparison_overrides("02_deep_arbitration")
    tiny_spec = chapters.chapter_spec("02_deep_arbitration", output_dir=out, **tiny)
    assert tiny_spec.model_id == COMPARED != book_spec.model_id and tiny_spec.run_dir() != book_spec.run_dir()
    for spec, ours in ((book_spec, "0.9 [0.8, 1.0]"), (tiny_spec, "0.1 [0.0, 0.2]")):
        w = RunWriter(spec)
        w.write_json("results.json", {"verdicts": [{"claim": "c", "paper": "p", "ours": ours, "verdict": "partly"}]})
        fill_declared(w)
        w.finish()
    table = chapters.comparison_table(output_dir=out)
    labels = [chapters.MODEL_LABELS[book_spec.model_id], chapters.MODEL_LABELS[COMPARED]]
    assert list(table.columns) == ["ch.", "claim", "paper"] + labels
    row = table[table["claim"] == "c"].iloc[0]
    assert (row[labels[0]], row[labels[1]]) == ("partly: 0.9 [0.8, 1.0]", "partly: 0.1 [0.0, 0.2]")
    assert (table[table["claim"] != "c"][labels[0]] == "not run: no finished run (IncompleteResultsError)").all()
    bad = tmp_path / "comparison.yaml"
    bad.write_text("model_id: organism\nchapters:\n  07_nope: {n_samples: 1}\n")
    monkeypatch.setattr(chapters, "COMPARISON", bad)
    with pytest.raises(ParameterError, match="07_nope"):
        chapters.comparison_parameters()


def test_dry_run_reports_every_problem_at_once():
    assert any("model: pretrained-organism" in line for line in dry_run(["00_behaviour"], {}))
    with pytest.raises(DryRunError) as err:
        dry_run(["00_behaviour"], {"model_id": "./no/such/model", "data": "/no/such/following_vision.json"})
    assert "no config.json" in str(err.value) and "not found" in str(err.value)
    # a parameter error stops the check before the model, whose building cannot fix it
    with pytest.raises(DryRunError) as err:
        dry_run(["00_behaviour"], {"n_sampels": 3, "model_id": "./no/such/model"})
    assert "n_sampels" in str(err.value) and "no config.json" not in str(err.value)


def test_head_and_behaviour_verdicts():
    import numpy as np

    # 20 heads in 4 layers; image following rests on head (3, 0), specific to it; text following
    # on head (0, 1), which hurts the text-only control just as much (needed by everything)
    def d(follow_hot, control_hot):
        f, c = np.zeros((4, 5)), np.zeros((4, 5))
        f[follow_hot], c[control_hot] = 1.0, 1.0 if control_hot == follow_hot and follow_hot == (0, 1) else 0.0
        return {"follow": {"ablation": f, "ablation_se": np.full_like(f, 0.01), "passes_per_sample": {"ablation": 21, "fast": 2}},
                "control": {"ablation": c, "ablation_se": np.full_like(c, 0.01)}}
    by_dir = {"image": d((3, 0), (1, 1)), "text": d((0, 1), (0, 1))}
    v = head_verdicts(by_dir, {}, 4, 0.05).set_index("rule")["verdict"]
    assert v["04-sparse"] == "reproduced"       # one head of 20 carries all of each direction
    # image's top head is specific, text's is not: a two-direction claim needs both (rule of 2026-12-06)
    assert v["04-specific"] == "not reproduced"
    assert "not reproduced in text" in head_verdicts(by_dir, {}, 4, 0.05).set_index("rule").loc["04-specific", "ours"]
    assert v["04-depth"] == "reproduced"        # the only arbitration head sits at depth 0.875
    assert v["04-fast"] == "not measured"
    agree = {t: {"spearman": 0.95, "pearson": 0.9, "top_overlap": 1.0, "heads above noise": 2} for t in by_dir}
    fast = head_verdicts(by_dir, agree, 4, 0.05).set_index("rule")["verdict"]["04-fast"]
    assert fast == "met"  # 21 / 2 passes: over 10x fewer
    summary = pd.DataFrame([
        {"condition": "held-out combinations", "kind": "conflict", "target": "image", "n": 100,
         "following_ratio": 0.97, "ci_low": 0.93, "ci_high": 0.99},
        {"condition": "held-out combinations", "kind": "conflict", "target": "text", "n": 100,
         "following_ratio": 0.90, "ci_low": 0.84, "ci_high": 0.95},
    ])
    summary.loc[len(summary)] = {"condition": "paper instructions", "kind": "conflict", "target": "text", "n": 50,
                                 "following_ratio": 0.92, "ci_low": 0.84, "ci_high": 0.98}
    phrasings = pd.DataFrame([{"direction": "image", "instruction": f"s{i}", "following_ratio": r}
                              for i, r in enumerate([0.9] * 10 + [0.5, float("nan")])]
                             + [{"direction": "text", "instruction": f"t{i}", "following_ratio": r}
                                for i, r in enumerate([0.9] * 8 + [0.79, 0.6, 0.95, 0.5])])
    t = targets_met(summary, phrasings)
    assert list(t["verdict"]) == ["met", "not met", "not measured", "not measured", "not measured", "met",
                                  "met", "not met"]
    assert t["ours"].iloc[0] == "97.0% [93.0%, 99.0%] of 100 items; the interval's low end 93.0% is below the target 95%"
    assert t["ours"].iloc[5].endswith("the interval's low end 84.0% is below the target 90%")  # met on the estimate only
    assert t["ours"].iloc[6] == "10 of 12 at ≥ 80% (1 cannot be read by this tokenizer)"
    assert t["ours"].iloc[7] == "9 of 12 at ≥ 80%"  # 0.79 misses the bar


def test_the_unseen_phrasing_view_reads_without_nan():
    from mfutils.findings.behaviour import phrasing_view

    p = pd.DataFrame([
        {"direction": "image", "instruction": "Ignore the text.", "n": 50, "following_ratio": 0.96,
         "ci_low": 0.9, "ci_high": 1.0, "competitor_share": 0.04, "note": ""},
        {"direction": "text", "instruction": "Believe the text.", "n": 50, "following_ratio": float("nan"),
         "ci_low": float("nan"), "ci_high": float("nan"), "competitor_share": float("nan"),
         "note": "cannot be read: no token for 'Believe'"},
    ])
    v = phrasing_view(p)
    assert list(v["followed"]) == ["96% [90%, 100%] of 50", "cannot be read: no token for 'Believe'"]
    assert list(v["from the other modality"]) == ["4%", ""]
    assert "nan" not in v.to_html(index=False).lower()


def test_one_numbering_the_registry():
    """Headings, the TOC and the prose use the registry's numbers; nothing else numbers chapters."""
    import re

    import yaml

    from mfutils.runs.paths import project_root
    from mfutils.book.sources import read_source

    toc = yaml.safe_load((project_root() / "_toc.yml").read_text())
    part = toc["parts"][0]
    assert not part.get("numbered"), "the TOC must not add its own numbers: the headings carry them"
    assert [c["file"].split("/")[-1] for c in part["chapters"]] == list(chapters.CHAPTERS)
    for ch in chapters.REGISTRY:
        nb = read_source(chapters.notebook_path(ch.name))
        assert nb.cells[0]["source"].splitlines()[0] == f"# {ch.heading}"
    for src in (project_root() / "notebooks").glob("*.md"):
        prose = src.read_text()
        assert not re.search(r"\b[Cc]hapters? 0\d", prose), f"{src.name}: chapters are numbered 0–5, not 00–05"
        assert not re.search(r"\b[Ff]indings? \d", prose), f"{src.name}: a finding number outside the registry"


def test_chapter_2_reads_chapter_1s_finished_run_only():
    from mfutils.findings import arbitration
    from mfutils.runs.results import IncompleteResultsError

    table = crossrefs.routing_effects_end(chapters.chapter_spec("02_deep_arbitration"))
    assert list(table.columns)[:2] == ["edge", "target"] and set(table["edge"]) <= set(arbitration.ROUTE_EDGES)
    with pytest.raises(IncompleteResultsError):
        crossrefs.routing_effects_end(chapters.chapter_spec("02_deep_arbitration", seed=12345))
    # the comparison run's chapter 2 reads the comparison run's chapter 1 (its own window and samples)
    tiny = crossrefs.routing_effects_end(chapters.chapter_spec("02_deep_arbitration", **chapters.comparison_overrides("02_deep_arbitration")))
    assert len(tiny) and not tiny.equals(table)


def test_the_prior_split_serves_chapters_0_and_3():
    from mfutils.findings.behaviour import prior_split

    rows = pd.DataFrame({"target": ["text"] * 4, "decision": [1, -1, 0, 1], "competitor_is_prior": [True, True, True, False]})
    both = prior_split(rows, decided_only=True).set_index("competitor_is_prior")
    assert both.loc[True, "following_ratio"] == 0.5 and both.loc[True, "n"] == 2 and both.loc[False, "n"] == 1
    all_rows = prior_split(rows.assign(kind=["conflict", "conflict", "conflict", "image_only"], prior="red"))
    assert all_rows.set_index("competitor_is_prior").loc[True, "n"] == 3 and len(all_rows) == 1


def test_what_changes_between_the_models_reads_each_models_runs_or_says_not_run(tmp_path):
    from mfutils.book import comparison

    table = comparison.depth_table(output_dir=str(tmp_path)).set_index("measurement")
    assert list(table.columns) == [chapters.MODEL_LABELS["pretrained-organism"], chapters.MODEL_LABELS[COMPARED]]
    assert list(table.loc["decoder layers"]) == ["30", {"organism": "8", "gemma-organism": "18"}[COMPARED]]
    assert (table.drop(index="decoder layers") == "not run").all().all()
    assert comparison.depth_summary(output_dir=str(tmp_path)).startswith("Neither model")
    # the committed comparison run is read where it finished
    tiny = comparison.measurements(chapters.comparison_overrides)
    assert tiny["arbitration heads (ch. 4's rule): where they sit"].endswith(")") and "not run" not in tiny.values()
    depths = comparison.depths(chapters.comparison_overrides)
    assert all(v is not None and 0 < v < 1 for v in depths.values())


def test_a_findings_state_counts_its_paper_claims_only_and_chapter_0_its_targets():
    from mfutils.book import comparison

    table = pd.DataFrame([
        {"ch.": 0, "rule": "", "verdict": "met"}, {"ch.": 0, "rule": "", "verdict": "not met"},
        {"ch.": 1, "rule": "01-vi", "verdict": "reproduced"}, {"ch.": 1, "rule": "01-qf", "verdict": "not met"},
        {"ch.": 4, "rule": "04-sparse", "verdict": "not reproduced"}, {"ch.": 4, "rule": "04-fast", "verdict": "met"},
        {"ch.": 5, "rule": "05-block", "verdict": "partly"}, {"ch.": 5, "rule": "05-general", "verdict": "not reproduced"},
    ])
    states = comparison.finding_states(table)
    assert states[0] == ("in part", "1 of 2 met")
    assert states[1] == ("holds", "1 of 1 reproduced")  # our hypothesis 01-qf does not count
    assert states[4] == ("does not hold", "0 of 1 reproduced")  # nor does our target 04-fast
    assert states[5] == ("in part", "0 of 2 reproduced, 1 partly")  # the count says why it is "in part"
