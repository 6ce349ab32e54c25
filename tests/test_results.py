from __future__ import annotations

import json

import pytest

from mfutils.runs.params import RunSpec
from mfutils.runs.results import IncompleteResultsError, RunWriter, finished_runs, load_run


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


from dataclasses import dataclass
import typing

from mfutils.runs.results import RunInProgressError


@dataclass(frozen=True)
class TwoFileSpec(RunSpec):
    chapter: str = "c"
    OUTPUTS: typing.ClassVar[tuple[str, ...]] = ("results.json", "table.csv")


def test_a_second_run_of_the_same_parameters_is_refused_naming_the_first(tmp_path):
    spec = TwoFileSpec(output_dir=str(tmp_path))
    first = RunWriter(spec)
    with pytest.raises(RunInProgressError, match=r"another run with the same parameters \(pid \d+"):
        RunWriter(spec)
    # the refusal touched nothing: the first run finishes with both of its files
    first.write_json("results.json", {"v": 1})
    first.path("table.csv").write_text("a\n1\n")
    done = first.finish()
    assert sorted(p.name for p in done.iterdir()) == ["_COMPLETE.json", "results.json", "spec.json", "table.csv"]
    assert load_run(spec)["results"] == {"v": 1}
    RunWriter(spec)  # finished: the lock is free again


def test_a_run_that_dies_releases_its_lock(tmp_path):
    import subprocess
    import sys

    code = ("from mfutils.runs.params import RunSpec; from mfutils.runs.results import RunWriter; import os; "
            f"w = RunWriter(RunSpec(chapter='c', output_dir={str(tmp_path)!r})); os._exit(3)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    RunWriter(RunSpec(chapter="c", output_dir=str(tmp_path)))  # not refused


def test_a_run_without_every_declared_file_does_not_finish_and_keeps_the_old_one(tmp_path):
    spec = TwoFileSpec(output_dir=str(tmp_path))
    w = RunWriter(spec)
    w.write_json("results.json", {"v": 1})
    w.path("table.csv").write_text("a\n1\n")
    w.finish()
    w2 = RunWriter(spec)
    w2.write_json("results.json", {"v": 2})
    with pytest.raises(IncompleteResultsError, match=r"table.csv missing .* unchanged"):
        w2.finish()
    assert load_run(spec)["results"] == {"v": 1}


def test_a_finished_folder_without_a_declared_file_is_not_accepted_for_its_spec(tmp_path):
    w = RunWriter(RunSpec(chapter="c", output_dir=str(tmp_path)))  # declares nothing: finishes with one file
    w.write_json("results.json", {"v": 1})
    w.finish()
    with pytest.raises(IncompleteResultsError, match="lacks table.csv"):
        load_run(TwoFileSpec(output_dir=str(tmp_path)))


def test_a_negative_seed_is_a_parameter_error():
    from mfutils.runs.params import ParameterError

    with pytest.raises(ParameterError, match="seed must be 0 or more"):
        RunSpec(seed=-1)
