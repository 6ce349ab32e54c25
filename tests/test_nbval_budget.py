"""The budgeted nbval run: cheapest first, paced by what this machine has shown, and a notebook
left out is named and never counted as passed."""

from __future__ import annotations

from pathlib import Path

from mfutils.book import nbval_budget as nb

TIMINGS = [{"chapter": "00_behaviour", "seconds": 100.0}, {"chapter": "01_shallow_routing", "seconds": 400.0},
           {"chapter": "03_mlp_inertia", "seconds": 200.0}, {"chapter": "index", "seconds": 10.0},
           {"chapter": "00_behaviour (comparison)", "seconds": 20.0}]
BOOK = [Path("book/chapters/01_shallow_routing.ipynb"), Path("book/chapters/00_behaviour.ipynb"),
        Path("book/chapters/03_mlp_inertia.ipynb"), Path("book/index.ipynb")]


class Machine:
    """A fake machine ``pace`` times slower than the recorded one; its clock advances as notebooks run."""

    def __init__(self, pace: float, fails: tuple[str, ...] = (), takes: dict[str, float] | None = None):
        self.now, self.pace, self.fails, self.ran, self.takes = 0.0, pace, fails, [], takes or {}

    def clock(self) -> float:
        return self.now

    def run_one(self, notebook: Path, timeout_s: float | None = None) -> bool | None:
        self.ran.append(notebook.stem)
        takes = self.takes.get(notebook.stem, nb.recorded_seconds(notebook, TIMINGS) * self.pace)
        if timeout_s is not None and takes > timeout_s:
            self.now += timeout_s
            return None
        self.now += takes
        return notebook.stem not in self.fails


def test_the_plan_is_cheapest_first_and_reads_the_books_own_timings():
    assert [Path(o.notebook).stem for o in nb.plan(BOOK, TIMINGS)] == ["index", "00_behaviour", "03_mlp_inertia",
                                                                       "01_shallow_routing"]
    assert nb.recorded_seconds(Path("book/chapters/00_behaviour.ipynb"), TIMINGS) == 100.0  # not the comparison's 20
    assert nb.recorded_seconds(Path("book/new_page.ipynb"), TIMINGS) == float("inf")


def test_a_fast_machine_re_executes_everything():
    m = Machine(pace=1.0)
    out = nb.run(BOOK, TIMINGS, budget_s=800, nbval_args=[], run_one=m.run_one, clock=m.clock)
    assert m.ran == ["index", "00_behaviour", "03_mlp_inertia", "01_shallow_routing"]
    assert all(o.status == "passed" for o in out)
    assert nb.summary(out).splitlines()[-1] == "nbval: 4 passed, 0 failed, 0 skipped"


def test_a_slow_machine_leaves_out_what_its_pace_says_will_not_fit():
    m = Machine(pace=5.0)
    out = nb.run(BOOK, TIMINGS, budget_s=2000, nbval_args=[], run_one=m.run_one, clock=m.clock)
    # index (10 s, sets no pace) and chapter 0 run; then the pace is 5: chapter 3 is predicted at
    # 1,000 s against 1,450 left and runs; chapter 1, 2,000 s against 450, does not
    assert m.ran == ["index", "00_behaviour", "03_mlp_inertia"]
    left_out = [o for o in out if o.seconds is None]
    assert [Path(o.notebook).stem for o in left_out] == ["01_shallow_routing"]
    assert left_out[0].predicted_s == 2000.0 and left_out[0].status.startswith("not re-executed")
    text = nb.summary(out)
    assert text.splitlines()[-1] == "nbval: 3 passed, 0 failed, 1 skipped"
    assert "make test-full" in text


def test_no_budget_re_executes_everything_and_a_failure_is_reported():
    m = Machine(pace=5.0, fails=("03_mlp_inertia",))
    out = nb.run(BOOK, TIMINGS, budget_s=0, nbval_args=[], run_one=m.run_one, clock=m.clock)
    assert len(m.ran) == 4
    assert [Path(o.notebook).stem for o in out if o.status == "FAILED"] == ["03_mlp_inertia"]
    assert nb.summary(out).splitlines()[-1] == "nbval: 3 passed, 1 failed, 0 skipped"


def test_under_a_budget_a_notebook_the_runner_never_timed_stops_the_run_before_anything_runs():
    m = Machine(pace=1.0)
    book = BOOK + [Path("book/new_page.ipynb")]
    try:
        nb.run(book, TIMINGS, budget_s=800, nbval_args=[], run_one=m.run_one, clock=m.clock)
    except nb.UnrecordedError as err:
        assert "book/new_page.ipynb" in str(err) and "python -m mfutils execute" in str(err)
    else:
        raise AssertionError("an untimed notebook was accepted under a budget")
    assert m.ran == []


def test_with_no_budget_an_untimed_notebook_runs_last():
    m = Machine(pace=1.0, takes={"new_page": 5.0})
    nb.run(BOOK + [Path("book/new_page.ipynb")], TIMINGS, budget_s=0, nbval_args=[], run_one=m.run_one, clock=m.clock)
    assert m.ran[-1] == "new_page" and len(m.ran) == 5


def test_the_command_says_what_to_do_without_a_timings_file(tmp_path, capsys):
    missing = tmp_path / "_timings.json"
    assert nb.main(["--budget-min", "40", "--timings", str(missing), "book/index.ipynb"]) == 2
    assert "make book" in capsys.readouterr().err
    untimed = tmp_path / "t.json"
    untimed.write_text("[]")
    assert nb.main(["--budget-min", "40", "--timings", str(untimed), "book/index.ipynb"]) == 2
    assert "book/index.ipynb" in capsys.readouterr().err


def test_times_recorded_on_other_machines_are_read_through_their_probes():
    # chapter 1 was executed on a machine five times faster than this one (probe 100 against 20),
    # chapter 3 on this one; chapter 0 has no probe and is taken as recorded
    timings = [{**t, "environment": {"matmul_gflops": 100.0}} if t["chapter"] == "01_shallow_routing" else
               {**t, "environment": {"matmul_gflops": 20.0}} if t["chapter"] == "03_mlp_inertia" else t
               for t in TIMINGS]
    plan = nb.plan(BOOK, timings, here_gflops=20.0)
    assert {Path(o.notebook).stem: o.expected_s for o in plan} == {
        "index": 10.0, "00_behaviour": 100.0, "03_mlp_inertia": 200.0, "01_shallow_routing": 2000.0}
    # this machine takes what the probes say: everything but chapter 1 fits 2,000 s, and chapter
    # 1's prediction is its 400 recorded seconds x 5, not x the pace of a same-machine chapter
    m = Machine(pace=1.0, takes={"01_shallow_routing": 2000.0})
    out = nb.run(BOOK, timings, budget_s=2000, nbval_args=[], run_one=m.run_one, clock=m.clock, here_gflops=20.0)
    assert m.ran == ["index", "00_behaviour", "03_mlp_inertia"]
    left_out = next(o for o in out if o.seconds is None)
    assert Path(left_out.notebook).stem == "01_shallow_routing" and left_out.predicted_s == 2000.0
    # without this machine's probe the old reading holds: recorded x pace (1.0 here), so it would run
    assert nb.plan(BOOK, timings)[-1].expected_s == 400.0


def test_the_machine_probe_is_measured_once_and_the_cpu_is_named():
    from mfutils.runs import machine

    assert machine.matmul_gflops() > 0 and machine.matmul_gflops() == machine.matmul_gflops()  # measured once
    assert machine.cpu_model()


def test_a_probed_record_is_not_paced_by_records_from_an_unknown_machine():
    # chapter 0 was re-executed on this machine (probe 20, 500 s); chapter 3 and index were
    # executed on an unknown machine six times faster: chapter 3 takes 6 x its 200 s here
    timings = [{**t, "seconds": 500.0, "environment": {"matmul_gflops": 20.0}} if t["chapter"] == "00_behaviour" else t
               for t in TIMINGS if t["chapter"] != "01_shallow_routing"]
    book = [b for b in BOOK if "01_" not in str(b)]
    m = Machine(pace=6.0, takes={"00_behaviour": 500.0})
    out = {Path(o.notebook).stem: o for o in nb.run(book, timings, budget_s=2000, nbval_args=[], run_one=m.run_one,
                                                    clock=m.clock, here_gflops=20.0)}
    assert m.ran == ["index", "03_mlp_inertia", "00_behaviour"]
    assert out["03_mlp_inertia"].seconds == 1200.0
    # predicted at its 500 probe-scaled seconds x the pace of probed records (none yet: 1), not x 6
    assert out["00_behaviour"].predicted_s == 500.0 and out["00_behaviour"].status == "passed"


def test_the_next_notebook_is_the_cheapest_predicted_here_not_the_cheapest_recorded():
    # stop 24's CI run: chapter 0 re-executed on this machine (probe-scaled: 640 s here); chapters 3
    # and 4 recorded on an unknown machine five times faster (180 and 260 s there). Once chapter 3
    # has shown the pace, chapter 4 is predicted at 1,300 s and chapter 0 at 640, so chapter 0 runs
    # next; sorting by expected seconds ran chapter 4 (260 < 640) and left chapter 0 out
    timings = [{"chapter": "00_behaviour", "seconds": 640.0, "environment": {"matmul_gflops": 20.0}},
               {"chapter": "03_mlp_inertia", "seconds": 180.0}, {"chapter": "04_sparse_heads", "seconds": 260.0},
               {"chapter": "index", "seconds": 10.0}]
    book = [Path("book/chapters/00_behaviour.ipynb"), Path("book/chapters/03_mlp_inertia.ipynb"),
            Path("book/chapters/04_sparse_heads.ipynb"), Path("book/index.ipynb")]
    m = Machine(pace=5.0, takes={"00_behaviour": 640.0, "03_mlp_inertia": 900.0, "04_sparse_heads": 1300.0})
    out = {Path(o.notebook).stem: o for o in nb.run(book, timings, budget_s=2400, nbval_args=[], run_one=m.run_one,
                                                    clock=m.clock, here_gflops=20.0)}
    assert m.ran == ["index", "03_mlp_inertia", "00_behaviour"]
    assert out["04_sparse_heads"].seconds is None and out["04_sparse_heads"].predicted_s == 1300.0


def test_a_notebook_still_running_when_the_budget_ends_is_stopped_and_not_counted():
    # chapter 3 is recorded on an unknown machine and runs first, at pace 1 (nothing has shown this
    # machine's pace yet): predicted 200 s, it takes 1,500 here; the budget is 1,000 s
    timings = [t for t in TIMINGS if t["chapter"] in ("03_mlp_inertia", "index")]
    book = [Path("book/chapters/03_mlp_inertia.ipynb"), Path("book/index.ipynb")]
    m = Machine(pace=1.0, takes={"03_mlp_inertia": 1500.0})
    out = {Path(o.notebook).stem: o for o in nb.run(book, timings, budget_s=1000, nbval_args=[], run_one=m.run_one,
                                                    clock=m.clock)}
    assert m.now == 1000.0  # the budget held
    assert out["03_mlp_inertia"].seconds is None and "not checked" in out["03_mlp_inertia"].status
    assert nb.summary(list(out.values())).splitlines()[-1] == "nbval: 1 passed, 0 failed, 1 skipped"


def test_a_real_nbval_run_is_stopped_with_its_kernel(tmp_path, monkeypatch):
    import subprocess
    import time

    import nbformat

    # the cell records the kernel's pid, then outlasts the timeout
    path = tmp_path / "slow.ipynb"
    cell = nbformat.v4.new_code_cell("import os, time\nopen(os.environ['PIDFILE'], 'w').write(str(os.getpid()))\n"
                                     "time.sleep(600)")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    pidfile = tmp_path / "kernel.pid"
    monkeypatch.setenv("PIDFILE", str(pidfile))
    t0 = time.monotonic()
    assert nb._nbval(path, ["-p", "no:cacheprovider"], timeout_s=45) is None
    assert time.monotonic() - t0 < 90
    assert pidfile.exists(), "the kernel never reached the cell: the test proves nothing about stopping it"
    pid = int(pidfile.read_text())
    for _ in range(100):  # ipykernel exits once its parent is gone
        if subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"kernel {pid} outlived its stopped nbval run")


def test_the_rotation_validates_each_notebook_first_over_consecutive_commits():
    picks = [nb.rotation_pick(BOOK, TIMINGS, turn) for turn in range(100, 100 + len(BOOK))]
    assert sorted(map(str, picks)) == sorted(map(str, BOOK))
    assert nb.rotation_pick(BOOK, TIMINGS, 0).stem == "01_shallow_routing"  # the most expensive at turn 0


def test_the_rotations_pick_runs_before_the_cheapest_and_the_budget_still_holds():
    m = Machine(pace=1.0)
    first = Path("book/chapters/01_shallow_routing.ipynb")
    out = nb.run(BOOK, TIMINGS, budget_s=450, nbval_args=[], run_one=m.run_one, clock=m.clock, first=first)
    assert m.ran[0] == "01_shallow_routing" and m.ran[1:] == ["index"]
    assert {Path(o.notebook).stem: o.status for o in out}["00_behaviour"] == "not re-executed (budget)"
