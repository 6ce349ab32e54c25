"""nbval over the executed book within a wall-clock budget, paced by the machine it runs on.

    python -m mfutils.book.nbval_budget [--budget-min 40] NOTEBOOK ... [-- NBVAL/PYTEST OPTIONS]

nbval re-executes every notebook and compares its outputs with the committed ones. On the
machine that executed the book that takes about as long as the book did (55 minutes on
2026-12-07). CI runs on whatever 2-core machine the session had, and these differ by a factor of
five: on an AMD EPYC (Zen 1) with MKL, chapter 0 took 679 s under nbval against 127 s on the
machine that executed it (measured 2026-12-02), so the whole book would take hours, past CI's
limit, and nothing would land.

So each notebook is re-executed by its own nbval run, and before each one the time of every
notebook still waiting is predicted on this machine, from its execution time in
``book/_timings.json`` and the pace observed so far among notebooks read the same way
(:func:`predict`); the cheapest runs next (:func:`next_cheapest`). Where the notebook's record
carries the matrix-product probe of the machine that executed it (:mod:`mfutils.runs.machine`,
recorded by the runner since 2026-12-02), its time is first scaled by that probe over this
machine's, so that a book whose chapters were executed on different machines is still predicted
chapter by chapter. A notebook whose prediction does not fit the budget left is not re-executed,
and the summary names it, with its prediction, beside those that passed or failed. Since issue
40's rules the book outgrew the 40-minute default even on the machine that executed it: there
all but one or two of the longest chapters (5; 4 when 5 goes first) fit (2026-12-07).
``--budget-min 0`` (``make test-full``) re-executes every notebook whatever it costs. A notebook
that fails fails the run; one left out never counts as passed. A prediction can still be wrong
(an unscaled record before any has shown this machine's pace, a busy machine), so a notebook
still running when the budget ends is stopped, and the summary names it as not checked.

Cheapest first alone would leave the same expensive chapter out of every CI run on a slow
machine. So one notebook, chosen by the commit count (:func:`rotation_pick`), is validated before
the cheapest: over as many consecutive commits as there are notebooks, each is first once.

Every notebook given needs a recorded time when there is a budget: the runner records one
whenever it executes a notebook, so a notebook without one was not executed by it, and a budget
could never say whether it fits. Such a notebook stops the run before anything is re-executed
(:class:`UnrecordedError`), rather than being left out run after run. With no budget it runs
last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: the pace assumed before any notebook has run: the machine that executed the book
FIRST_PACE = 1.0
#: notebooks shorter than this (seconds, as recorded) do not set the pace: kernel start-up and
#: imports dominate them
PACE_MIN_SECONDS = 60.0


class UnrecordedError(ValueError):
    """Notebooks without a recorded execution time, asked for under a budget."""


@dataclass
class Outcome:
    notebook: str
    recorded_s: float  # as recorded, on the machine that executed it
    predicted_s: float
    seconds: float | None = None  # None: not re-executed
    status: str = "not re-executed (budget)"
    scaled_s: float | None = None  # recorded_s at this machine's probe speed; None: as recorded

    @property
    def expected_s(self) -> float:
        return self.recorded_s if self.scaled_s is None else self.scaled_s


def _entry(notebook: Path, timings: list[dict]) -> dict | None:
    """The notebook's entry in ``_timings.json`` (the book's own run, not the comparison run's)."""
    return next((t for t in timings if t["chapter"] == notebook.stem), None)


def recorded_seconds(notebook: Path, timings: list[dict]) -> float:
    """The notebook's execution time where it was executed (``_timings.json``; the book's own
    run, not the comparison run's); ``inf`` for one with none."""
    e = _entry(notebook, timings)
    return float(e["seconds"]) if e else float("inf")


def scaled_seconds(notebook: Path, timings: list[dict], here_gflops: float | None) -> float | None:
    """The recorded time at this machine's speed: x the recording machine's
    :func:`mfutils.runs.machine.matmul_gflops` over this one's. ``None`` when either probe is
    unknown (runs recorded before 2026-12-02 have none): the recorded time stands as it is."""
    e = _entry(notebook, timings) if here_gflops else None
    rec = (e or {}).get("environment", {}).get("matmul_gflops")
    if not (e and rec and here_gflops):
        return None
    return float(e["seconds"]) * float(rec) / float(here_gflops)


def predict(expected_s: float, done: list[Outcome], scaled: bool = False) -> float:
    """This machine's time for a notebook expected at ``expected_s`` (recorded, scaled by the
    probes where known): x the pace (seconds taken per second expected) of the notebooks run so
    far that are long enough to measure it, :data:`FIRST_PACE` before any.

    A ``scaled`` expectation (through the probes) is paced only by scaled ones, an unscaled one
    only by unscaled ones: the pace of a record from an unknown machine holds that machine's
    speed, which a probe-scaled expectation has already taken out (applying it twice predicted
    chapter 0, re-executed on this very machine, at six times its time)."""
    timed = [o for o in done if o.seconds is not None and o.recorded_s >= PACE_MIN_SECONDS
             and (o.scaled_s is not None) == scaled]
    pace = sum(o.seconds for o in timed) / sum(o.expected_s for o in timed) if timed else FIRST_PACE
    return expected_s * pace


def plan(notebooks: list[Path], timings: list[dict], budget_s: float = 0.0,
         here_gflops: float | None = None) -> list[Outcome]:
    """One not-yet-run :class:`Outcome` per notebook, by expected seconds (ties by path); under a
    budget every notebook must have a recorded time (:class:`UnrecordedError`)."""
    rows = [Outcome(str(nb), recorded_seconds(nb, timings), float("nan"),
                    scaled_s=scaled_seconds(nb, timings, here_gflops)) for nb in notebooks]
    unrecorded = [o.notebook for o in rows if o.recorded_s == float("inf")]
    if budget_s and unrecorded:
        raise UnrecordedError(
            f"no recorded execution time in book/_timings.json for: {', '.join(unrecorded)}. The runner records one "
            "whenever it executes a notebook (`python -m mfutils execute NAME`, or `make book`), so these were "
            "not executed by it and a budget cannot tell whether they fit; execute them through the runner, or "
            "re-execute everything with no budget (`make test-full`)")
    return sorted(rows, key=lambda o: (o.expected_s, o.notebook))


def next_cheapest(waiting: list[Outcome], done: list[Outcome]) -> Outcome:
    """The waiting notebook predicted cheapest on this machine by what has run so far (ties by
    path), its ``predicted_s`` set.

    Chosen afresh before each run, not once by expected seconds: a probe-scaled expectation is in
    this machine's seconds and an unscaled one in the recording machine's, so the two only compare
    once each is paced (a stop-24 CI run re-executed an unscaled chapter predicted at 21.9 min
    before a scaled one predicted at 10.7, and had no budget left for the scaled one)."""
    for o in waiting:
        o.predicted_s = predict(o.expected_s, done, scaled=o.scaled_s is not None)
    return min(waiting, key=lambda o: (o.predicted_s, o.notebook))


def rotation_pick(notebooks: list[Path], timings: list[dict], turn: int) -> Path:
    """The notebook this run validates first, before the cheapest: the ``turn``-th (modulo their
    number) by recorded time, most expensive first. ``turn`` is the commit count of the tree
    under test, so consecutive commits validate each notebook in turn: on a machine too slow for
    the whole book, the expensive chapters are checked over consecutive runs, not never."""
    ranked = sorted(notebooks, key=lambda nb: (-recorded_seconds(nb, timings), str(nb)))
    return ranked[turn % len(ranked)]


def run(notebooks: list[Path], timings: list[dict], budget_s: float, nbval_args: list[str],
        run_one=None, clock=time.monotonic, here_gflops: float | None = None,
        first: Path | None = None) -> list[Outcome]:
    """Re-execute what fits ``budget_s`` (0: everything); ``run_one(notebook, timeout_s) ->
    passed``, ``None`` when stopped at ``timeout_s`` (the budget left; ``None``: no budget);
    ``here_gflops``: this machine's probe (None: recorded times are taken as they are);
    ``first``: the notebook validated before the cheapest (:func:`rotation_pick`), if it fits."""
    run_one = run_one or (lambda nb, timeout_s: _nbval(nb, nbval_args, timeout_s))
    start = clock()
    done: list[Outcome] = []
    waiting = plan(notebooks, timings, budget_s, here_gflops)
    while waiting:
        out = next_cheapest(waiting, done)
        if first is not None and not done:
            out = next(o for o in waiting if Path(o.notebook) == Path(first))
        waiting.remove(out)
        nb = Path(out.notebook)
        left = budget_s - (clock() - start)
        if budget_s and out.predicted_s > left:
            print(f"nbval {nb}: not re-executed, predicted {_minutes(out.predicted_s)} on this machine "
                  f"against {_minutes(max(left, 0))} of budget left", flush=True)
            done.append(out)
            continue
        t0 = clock()
        passed = run_one(nb, max(left, 0.0) if budget_s else None)
        took = clock() - t0
        if passed is None:
            # a prediction can be wrong (an unscaled record before any has shown this machine's
            # pace, a busy machine): the budget holds anyway, and what was stopped is not checked
            out.status = "stopped at the budget (not checked)"
            print(f"nbval {nb}: stopped after {_minutes(took)}, at the end of the budget (predicted "
                  f"{_minutes(out.predicted_s)}); not checked", flush=True)
        else:
            out.seconds = took
            out.status = "passed" if passed else "FAILED"
            print(f"nbval {nb}: {out.status} in {_minutes(took)} (recorded {_minutes(out.recorded_s)})", flush=True)
        done.append(out)
    return done


def _nbval(notebook: Path, args: list[str], timeout_s: float | None = None) -> bool | None:
    """nbval on one notebook: passed or not; ``None`` when it was stopped after ``timeout_s``.
    It runs in a process group of its own so that stopping it also stops its kernel."""
    cmd = [sys.executable, "-m", "pytest", "-q", "--nbval", str(notebook), *args]
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s) == 0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def _commit_count() -> int:
    """``git rev-list --count HEAD``: one more with every commit; 0 where there is no git."""
    try:
        out = subprocess.run(["git", "rev-list", "--count", "HEAD"], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def _minutes(seconds: float) -> str:
    return "unknown" if seconds == float("inf") else f"{seconds / 60:.1f} min"


def summary(outcomes: list[Outcome]) -> str:
    """The table CI prints, then one closing line: ``nbval: N passed, N failed, N skipped``."""
    lines = ["| notebook | recorded | predicted here | took | result |", "|---|---|---|---|---|"]
    for o in sorted(outcomes, key=lambda o: o.notebook):
        took = "—" if o.seconds is None else _minutes(o.seconds)
        lines.append(f"| {o.notebook} | {_minutes(o.recorded_s)} | {_minutes(o.predicted_s)} | {took} | {o.status} |")
    passed = sum(o.status == "passed" for o in outcomes)
    failed = sum(o.status == "FAILED" for o in outcomes)
    skipped = sum(o.seconds is None for o in outcomes)
    if skipped:
        lines.append(f"{skipped} notebook(s) not re-executed or not finished: this machine is too slow for them within "
                     "the budget; "
                     "`make test-full` re-executes every notebook")
    lines.append(f"nbval: {passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mfutils.book.nbval_budget", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=40.0, help="wall-clock minutes for all notebooks; 0: no limit")
    ap.add_argument("--timings", default="book/_timings.json")
    ap.add_argument("--turn", type=int, help="rotation turn (default: the commit count of HEAD, 0 outside git)")
    ap.add_argument("notebooks", nargs="+", type=Path)
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, nbval_args = ap.parse_args(argv[:cut]), argv[cut + 1:]
    timings_file = Path(args.timings)
    if timings_file.exists():
        timings = json.loads(timings_file.read_text())
    elif args.budget_min:
        print(f"nbval: {timings_file} is missing, so no notebook's cost is known and no budget can be kept. It is "
              "written by the runner (`make book`); or re-execute everything with no budget (`make test-full`)",
              file=sys.stderr)
        return 2
    else:
        timings = []
    here = None
    if any("matmul_gflops" in t.get("environment", {}) for t in timings):
        from mfutils.runs.machine import matmul_gflops

        here = matmul_gflops()
        print(f"nbval: this machine's matrix-product probe: {here:g} GFLOP/s per thread", flush=True)
    first = None
    if args.budget_min and args.notebooks:
        turn = _commit_count() if args.turn is None else args.turn
        first = rotation_pick(args.notebooks, timings, turn)
        print(f"nbval: this run validates {first} first (turn {turn} of the rotation over {len(args.notebooks)} "
              "notebooks, most expensive first), then the cheapest that fit", flush=True)
    try:
        outcomes = run(args.notebooks, timings, args.budget_min * 60, nbval_args, here_gflops=here, first=first)
    except UnrecordedError as err:
        print(f"nbval: {err}", file=sys.stderr)
        return 2
    print(summary(outcomes), flush=True)
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
