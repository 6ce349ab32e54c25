"""Every bad input a newcomer tried gets one clear message and a non-zero exit from the dry run
(``python -m mfutils check``), before any model is built."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from mfutils.models import loading
from mfutils.book import runner
from mfutils.runs.paths import project_root


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if the dry run reaches the model check (building the default model costs a
    minute and a gigabyte of cache, and cannot fix a parameter)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was checked before the parameter error was reported")

    monkeypatch.setattr(loading, "check_model", refuse)


def _check(capsys, *argv) -> tuple[int, str]:
    code = runner.main(["check", *argv])
    return code, capsys.readouterr().err


def test_an_unknown_chapter_is_named(capsys, no_model):
    code, err = _check(capsys, "07")
    assert code == 2 and "no chapter or page matches 07" in err and "05_causal_interventions" in err


@pytest.mark.parametrize("argv, says", [
    (("-p", "seed", "-1"), "seed must be 0 or more"),
    (("-p", "n_sample", "8"), "unknown parameter(s) ['n_sample']"),
    (("-p", "n_samples", "many"), "parameter n_samples='many': expected int"),
])
def test_a_parameter_error_is_reported_before_any_model_is_built(capsys, no_model, argv, says):
    code, err = _check(capsys, "00", *argv)
    assert code == 2 and says in err


@pytest.mark.parametrize("text, says", [
    (None, "not found"),
    ("model_id: [unclosed\n", "is not valid YAML (line 2"),
    ("- n_samples\n- 8\n", "must be a mapping of parameter names to values"),
])
def test_a_bad_parameters_file_is_one_sentence(tmp_path, capsys, no_model, text, says):
    path = tmp_path / "family.yaml"
    if text is not None:
        path.write_text(text)
    code, err = _check(capsys, "00", "--params-file", str(path))
    assert code == 2 and says in err and "Traceback" not in err


@pytest.mark.parametrize("name, text, says", [
    ("following_vision.jsonl", "", "holds no items"),
    ("following_vision.json", "[]", "holds no items"),
    ("following_vision.jsonl", '{"image_id": "1"}\n{"image_id": 2,,}\n', "line 2: not valid JSON"),
])
def test_a_bad_data_file_is_named_with_its_line(tmp_path, capsys, name, text, says):
    path = tmp_path / name
    path.write_text(text)
    code, err = _check(capsys, "00", "-p", "model_id", "organism", "-p", "data", str(path))
    assert code == 2 and says in err
    if "line 2" in says:
        assert "{\"image_id\": 2,,}" in err  # the row itself, to find it


def test_a_model_folder_without_its_tokenizer_is_refused(tmp_path, capsys):
    model = tmp_path / "organism-copy"
    shutil.copytree(project_root() / "models" / "organism", model)
    for name in loading.TOKENIZER_FILES:
        (model / name).unlink(missing_ok=True)
    code, err = _check(capsys, "00", "-p", "model_id", str(model))
    assert code == 2 and "has no tokenizer" in err


@pytest.mark.slow
def test_a_cell_past_its_limit_says_how_to_raise_it(tmp_path, capsys):
    src, dst = tmp_path / "07_slow.ipynb", tmp_path / "out.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(60)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src)
    assert runner._run_papermill(str(src), str(dst), "{}", "3") == 1
    err = capsys.readouterr().err
    assert "ran past the per-cell limit of 3 s" in err and "--timeout 6" in err
    assert not dst.exists()


def test_the_per_cell_limit_grows_on_a_slower_machine(tmp_path, monkeypatch):
    import json

    from mfutils.runs import machine

    (tmp_path / "book").mkdir()
    (tmp_path / runner.TIMINGS).write_text(json.dumps([{"chapter": "00_behaviour",
                                                        "environment": {"matmul_gflops": 150.0}}]))
    monkeypatch.setattr(machine, "matmul_gflops", lambda: 50.0)
    assert runner.scaled_timeout(1000, tmp_path)[0] == 3000
    monkeypatch.setattr(machine, "matmul_gflops", lambda: 300.0)
    assert runner.scaled_timeout(1000, tmp_path)[0] == 1000  # never below the base
