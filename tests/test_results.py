from __future__ import annotations

import json

import pytest

from mfutils.params import RunSpec
from mfutils.results import IncompleteResultsError, RunWriter, finished_runs, load_run


def test_interrupted_run_is_not_mistaken_for_finished_and_keeps_old_results(tmp_path):
    spec = RunSpec(chapter="c", output_dir=str(tmp_path))
    w = RunWriter(spec)
    w.write_json("results.json", {"v": 1})
    w.finish()
    assert load_run(spec.run_dir())["results"] == {"v": 1}

    w2 = RunWriter(spec)  # a second run that dies before finish()
    w2.write_json("results.json", {"v": 2})
    del w2
    assert load_run(spec.run_dir())["results"] == {"v": 1}
    assert finished_runs(str(tmp_path), "c") == [spec.run_dir()]


def test_run_without_manifest_or_with_tampered_file_is_rejected(tmp_path):
    spec = RunSpec(chapter="c", output_dir=str(tmp_path))
    w = RunWriter(spec)
    w.write_json("results.json", {"v": 1})
    d = w.finish()
    (d / "results.json").write_text(json.dumps({"v": 3}))
    with pytest.raises(IncompleteResultsError, match="changed"):
        load_run(d)
    (d / "_COMPLETE.json").unlink()
    with pytest.raises(IncompleteResultsError, match="did not finish"):
        load_run(d)
