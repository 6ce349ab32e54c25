"""The runner: on interruption Ctrl-C stops the whole run at once and loses nothing; the
environment page it writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest

from mfutils.book import runner

DRIVER = textwrap.dedent("""
    import signal
    import sys
    from pathlib import Path
    from mfutils.book import runner
    # as in a terminal: a process started in the background by a non-interactive shell (CI, nohup
    # ... &) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pairs = [(Path(sys.argv[1]), Path(sys.argv[2])), (Path(sys.argv[3]), Path(sys.argv[4]))]
    runner.run_selected(pairs, {}, 600)
    print("RUN FINISHED")
""")


def _notebook(path, source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_stops_the_run_at_once_and_keeps_what_was_there(tmp_path, signum):
    pidfile = tmp_path / "kernel.pid"
    slow, later = tmp_path / "slow.ipynb", tmp_path / "later.ipynb"
    _notebook(slow, f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)")
    _notebook(later, f"open({str(tmp_path / 'later_ran')!r}, 'w').write('yes')")
    done, done_later = tmp_path / "out" / "slow.ipynb", tmp_path / "out" / "later.ipynb"
    done.parent.mkdir()
    done.write_text("the finished chapter of an earlier run")
    # a shell sends Ctrl-C's SIGINT to its foreground process group: the driver's own group here
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(slow), str(done), str(later), str(done_later)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    kernel = None
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and pidfile.read_text()):  # the kernel is inside the slow cell
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        kernel = int(pidfile.read_text())
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed test leaves nothing running: the chapter's own session too
            import psutil

            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            os.killpg(proc.pid, signal.SIGKILL)
        if kernel is not None and _alive(kernel) and proc.returncode != runner.INTERRUPTED:
            os.kill(kernel, signal.SIGKILL)
    assert proc.returncode == runner.INTERRUPTED, (out, err)
    assert "RUN FINISHED" not in out
    assert f"slow: interrupted. {done} is as it was before this run" in err
    assert "Traceback" not in err, err  # one line, not the kernel's traceback
    assert done.read_text() == "the finished chapter of an earlier run"
    assert (tmp_path / "out" / "slow.partial.ipynb").exists(), "the partial notebook is kept for inspection"
    assert not (tmp_path / "later_ran").exists() and not done_later.exists()  # the run did not carry on
    time.sleep(1)
    assert not _alive(kernel), "the interrupted chapter's kernel is still running"


def test_environment_page_shows_the_benchmark_and_the_sweeps_work_per_edge(tmp_path):
    from mfutils.book.runner import BENCHMARK, ENVIRONMENT, write_environment_page

    (tmp_path / "book").mkdir()
    env = {"python": "3.11", "torch": "2.13.0", "transformers": "5.24", "machine": "x86_64", "cpus": 2}
    (tmp_path / BENCHMARK).write_text(json.dumps({
        "machine": {"python": "3.11", "torch": "2.13.0", "cpu": "x86_64"}, "measured": "2026-12-01",
        "threads": [{"threads": 1, "batch": 64, "median ms / forward": 289.8}, {"threads": 2, "batch": 64, "median ms / forward": 167.7}],
        "engine": [{"model": "organism", "task": "knockout sweep", "engine": "incremental",
                    "forward-equivalents / sample": 18.2, "share of naive": 0.249, "seconds": 12.0,
                    "max |Δ logit diff| vs naive": 0.0}],
        "sweep_by_edge": [{"model": "organism", "edge": "Vision -/-> Last", "incremental": 0.125,
                           "per-sample floor": 0.031}]}))
    write_environment_page(tmp_path, env)
    page = (tmp_path / ENVIRONMENT).read_text()
    assert "| organism | knockout sweep | incremental | 18.2 | 25% | 12.0 | 0 |" in page
    assert "| organism | Vision -/-> Last | 12.5% | 3.1% |" in page
    assert "median forward pass 290 ms on 1 thread, 168 ms on 2 threads (batch 64)" in page and "[{" not in page


def test_environment_page_names_each_chapters_cpu_and_its_probe_where_recorded(tmp_path):
    from mfutils.book.runner import ENVIRONMENT, TIMINGS, write_environment_page

    (tmp_path / "book").mkdir()
    old = {"python": "3.11", "torch": "2.13.0", "transformers": "5.24", "machine": "x86_64", "cpus": 2}
    new = {**old, "cpu": "AMD EPYC", "matmul_gflops": 34.8}
    (tmp_path / TIMINGS).write_text(json.dumps([
        {"chapter": "00_behaviour", "executed": "then", "seconds": 127.0, "peak_rss_mb": 1, "environment": old},
        {"chapter": "03_mlp_inertia", "executed": "now", "seconds": 900.0, "peak_rss_mb": 1, "environment": new}]))
    write_environment_page(tmp_path, new)
    page = (tmp_path / ENVIRONMENT).read_text()
    assert "| 00_behaviour | then | 127 | 1 | — | A |" in page
    assert "| 03_mlp_inertia | now | 900 | 1 | 34.8 | B |" in page
    # each set-up written once, not in every row
    assert page.count("AMD EPYC") == 1 and "Set-up A: x86_64, 2 CPUs; python 3.11, torch 2.13.0, transformers 5.24." in page
    assert "Set-up B: x86_64, AMD EPYC, 2 CPUs; python 3.11" in page
    assert "| cpu |" not in page  # hardware sits in the timing section, not among the package versions


def test_a_second_runner_of_the_same_chapter_is_refused_with_a_message(tmp_path, capsys):
    src, dst = tmp_path / "00_x.ipynb", tmp_path / "out" / "00_x.ipynb"
    _notebook(src, "print('never run')")
    dst.parent.mkdir()
    with runner._notebook_lock(dst):  # the first run, still executing
        with pytest.raises(SystemExit) as stop:
            runner.run_selected([(src, dst)], {}, 60)
    assert stop.value.code == 2
    assert f"00_x is being executed by another runner (pid {os.getpid()}" in capsys.readouterr().err
    assert not dst.exists()


def test_a_failed_chapter_keeps_the_times_of_those_finished_before_it(tmp_path, monkeypatch):
    recorded = []
    outcomes = {"a": True, "b": False, "c": True}
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    monkeypatch.setattr(runner, "_record", lambda root, timings: recorded.append([t["chapter"] for t in timings]))
    monkeypatch.setattr(runner, "execute_one", lambda src, dst, parameters, timeout: {
        "chapter": src.stem, "ok": outcomes[src.stem], "seconds": 1.0, "peak_rss_mb": 1})
    pairs = [(tmp_path / f"{n}.md", tmp_path / "out" / f"{n}.ipynb") for n in "abc"]
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit) as err:
        runner.run_selected(pairs, {}, 60, record=True)
    assert err.value.code == 1 and recorded == [["a"]]  # b failed, c never ran
    # the comparison run records what finished before a failure too
    recorded.clear()
    monkeypatch.setattr(runner, "chapters", lambda root: [p for p, _ in pairs])
    monkeypatch.setattr("mfutils.book.chapters.comparison_overrides", lambda stem: {})
    with pytest.raises(SystemExit):
        runner.compare([], 60)
    assert recorded == [["a (comparison)"]]


def test_executed_notebooks_do_not_carry_the_checkouts_folder(tmp_path):
    root = tmp_path / "checkout"
    cell = nbformat.v4.new_code_cell("run.writer.finish()", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": f"PosixPath('{root}/results/00/x/ab12')"},
                               execution_count=1),
        nbformat.v4.new_output("stream", name="stdout", text=f"wrote {root}/results/00/x/ab12/summary.csv\n"),
        nbformat.v4.new_output("stream", name="stdout", text=f"elsewhere: {tmp_path}/other/file\n"),
    ]
    cell.metadata["execution"] = {"iopub.status.busy": "2026-12-07T05:00:00"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    runner._strip_volatile(path, root)
    out = nbformat.read(path, as_version=4).cells[0]
    assert out.outputs[0]["data"]["text/plain"] == "PosixPath('results/00/x/ab12')"
    assert out.outputs[1]["text"] == "wrote results/00/x/ab12/summary.csv\n"
    assert out.outputs[2]["text"] == f"elsewhere: {tmp_path}/other/file\n"  # only the checkout's own folder
    assert "execution" not in out.metadata
