"""The chapter registry, the front page's generated summary, and the dry run."""

from __future__ import annotations

import pandas as pd
import pytest

from mfutils import chapters
from mfutils.behaviour import targets_met
from mfutils.dryrun import DryRunError, dry_run
from mfutils.head_scores import verdicts as head_verdicts
from mfutils.params import ParameterError
from mfutils.results import RunWriter
from mfutils.routing import verdicts as routing_verdicts


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
    unfinished = chapters.summary_table(output_dir=out)
    assert "partly" not in set(unfinished["verdict"])  # an unfinished run is never read
    w.finish()
    row = chapters.summary_table(output_dir=out).query("verdict == 'partly'").iloc[0]
    assert row["ours"] == "0.5 [0.4, 0.6]" and row["command"].startswith("python -m mfutils.runner execute 02")


def test_dry_run_reports_every_problem_at_once():
    assert any("model: organism" in line for line in dry_run(["00_behaviour"], {}))
    with pytest.raises(DryRunError) as err:
        dry_run(["00_behaviour"], {"n_sampels": 3, "model_id": "./no/such/model"})
    assert "n_sampels" in str(err.value) and "no config.json" in str(err.value)


def _routing_curve(vt_image: float, ci: float) -> pd.DataFrame:
    rows = []
    for edge, target, v in [("Vision -/-> Text", "image", vt_image), ("Vision -/-> Text", "text", 0.2),
                            ("TextCtx -/-> Instruction", "text", -0.3), ("TextCtx -/-> Last", "text", -0.01),
                            ("Vision -/-> Instruction", "image", -0.2), ("Vision -/-> Last", "image", -0.3),
                            ("TextCtx -/-> Constraint", "text", 0.001), ("Vision -/-> Constraint", "image", 0.2)]:
        rows.append({"edge": edge, "target": target, "layer": 3, "i_nssd": v, "ci_low": v - ci, "ci_high": v + ci})
    return pd.DataFrame(rows)


def test_routing_verdicts_need_a_ci_excluding_zero_a_meaningful_size_and_a_weaker_bypass():
    v = routing_verdicts(_routing_curve(-0.5, 0.1), 8).set_index("claim")["verdict"].tolist()
    # vision->text hurts (reproduced), helps text (reproduced), text via instruction beats bypass
    # (reproduced), vision via instruction loses to its bypass (partly: CI excludes 0 only),
    # constraint controls: text nothing (reproduced), vision 0.2 (not reproduced)
    assert v == ["reproduced", "reproduced", "reproduced", "partly", "reproduced", "not reproduced"]
    small = routing_verdicts(_routing_curve(-0.02, 0.01), 8)
    assert small["verdict"].iloc[0] == "partly"  # CI excludes zero, but below MEANINGFUL
    assert routing_verdicts(_routing_curve(-0.02, 0.05), 8)["verdict"].iloc[0] == "not reproduced"


def test_head_and_behaviour_verdicts():
    v = head_verdicts({"image": 0.6, "text": 0.1}, {"spearman": 0.95, "top_overlap": 0.75})
    assert list(v["verdict"]) == ["partly", "reproduced"]
    v = head_verdicts({"image": 0.6, "text": 0.4}, {"spearman": float("nan"), "top_overlap": float("nan")})
    assert list(v["verdict"]) == ["reproduced", "not measured"]
    summary = pd.DataFrame([
        {"condition": "held-out combinations", "kind": "conflict", "target": "image", "n": 100,
         "following_ratio": 0.97, "ci_low": 0.93, "ci_high": 0.99},
        {"condition": "held-out combinations", "kind": "conflict", "target": "text", "n": 100,
         "following_ratio": 0.90, "ci_low": 0.84, "ci_high": 0.95},
    ])
    t = targets_met(summary)
    assert list(t["verdict"]) == ["met", "not met", "not measured", "not measured"]
    assert t["ours"].iloc[0] == "97.0% [93.0%, 99.0%] of 100 held-out items"
