"""The budgeted nbval run: cheapest first, paced by what this machine has shown, and a notebook
left out is named and never counted as passed."""

from __future__ import annotations

from pathlib import Path

from mfutils import nbval_budget as nb

TIMINGS = [{"chapter": "00_behaviour", "seconds": 100.0}, {"chapter": "01_shallow_routing", "seconds": 400.0},
           {"chapter": "03_mlp_inertia", "seconds": 200.0}, {"chapter": "index", "seconds": 10.0},
           {"chapter": "00_behaviour (comparison)", "seconds": 20.0}]
BOOK = [Path("book/chapters/01_shallow_routing.ipynb"), Path("book/chapters/00_behaviour.ipynb"),
        Path("book/chapters/03_mlp_inertia.ipynb"), Path("book/index.ipynb")]


class Machine:
    """A fake machine ``pace`` times slower than the recorded one; its clock advances as notebooks run."""

    def __init__(self, pace: float, fails: tuple[str, ...] = ()):
        self.now, self.pace, self.fails, self.ran = 0.0, pace, fails, []

    def clock(self) -> float:
        return self.now

    def run_one(self, notebook: Path) -> bool:
        self.ran.append(notebook.stem)
        self.now += nb.recorded_seconds(notebook, TIMINGS) * self.pace
        return notebook.stem not in self.fails


def test_the_plan_is_cheapest_first_and_reads_the_books_own_timings():
    assert [p.stem for p, _ in nb.plan(BOOK, TIMINGS)] == ["index", "00_behaviour", "03_mlp_inertia", "01_shallow_routing"]
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
        assert "book/new_page.ipynb" in str(err) and "mfutils.runner execute" in str(err)
    else:
        raise AssertionError("an untimed notebook was accepted under a budget")
    assert m.ran == []


def test_with_no_budget_an_untimed_notebook_runs_last():
    m = Machine(pace=1.0)
    m.run_one = lambda notebook, m=m: m.ran.append(notebook.stem) or True
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
