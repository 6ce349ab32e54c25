"""nbval over the executed book within a wall-clock budget, paced by the machine it runs on.

    python -m mfutils.nbval_budget [--budget-min 40] NOTEBOOK ... [-- NBVAL/PYTEST OPTIONS]

nbval re-executes every notebook and compares its outputs with the committed ones. On the
machine that executed the book that takes about as long as the book did (30 minutes). CI runs on
whatever 2-core machine the session had, and these differ by a factor of five: on an AMD EPYC
(Zen 1) with MKL, chapter 0 took 679 s under nbval against 127 s on the machine that executed it
(measured 2026-12-02), so the whole book would take about 2.5 hours, past CI's limit, and nothing
would land.

So each notebook is re-executed by its own nbval run, cheapest first (by its execution time in
``book/_timings.json``), and before each one its time on this machine is predicted from the
pace observed so far (:func:`predict`). A notebook whose prediction does not fit the budget left
is not re-executed, and the summary names it, with its prediction, beside those that passed or
failed. On a machine as fast as the one that executed the book every notebook fits. ``--budget-min
0`` (``make test-full``) re-executes every notebook whatever it costs. A notebook that fails
fails the run; one left out never counts as passed.

Every notebook given needs a recorded time when there is a budget: the runner records one
whenever it executes a notebook, so a notebook without one was not executed by it, and a budget
could never say whether it fits. Such a notebook stops the run before anything is re-executed
(:class:`UnrecordedError`), rather than being left out run after run. With no budget it runs
last.
"""

from __future__ import annotations

import argparse
import json
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
    """Notebooks without a recorded execution time (or no ``_timings.json`` at all) under a budget."""


@dataclass
class Outcome:
    notebook: str
    recorded_s: float
    predicted_s: float
    seconds: float | None = None  # None: not re-executed
    status: str = "not re-executed (budget)"


def recorded_seconds(notebook: Path, timings: list[dict]) -> float:
    """The notebook's execution time on the machine that executed the book (``_timings.json``;
    the book's own run, not the comparison run's). Unknown notebooks count as expensive."""
    by_name = {t["chapter"]: float(t["seconds"]) for t in timings}
    return by_name.get(notebook.stem, float("inf"))


def predict(recorded_s: float, done: list[Outcome]) -> float:
    """This machine's time for a notebook recorded at ``recorded_s``: recorded time x the pace
    (this machine's seconds per recorded second) of the notebooks run so far that are long
    enough to measure it, :data:`FIRST_PACE` before any."""
    timed = [o for o in done if o.seconds is not None and o.recorded_s >= PACE_MIN_SECONDS]
    pace = sum(o.seconds for o in timed) / sum(o.recorded_s for o in timed) if timed else FIRST_PACE
    return recorded_s * pace


def plan(notebooks: list[Path], timings: list[dict], budget_s: float = 0.0) -> list[tuple[Path, float]]:
    """``(notebook, recorded seconds)``, cheapest first (ties by path); under a budget every
    notebook must have a recorded time (:class:`UnrecordedError`)."""
    rows = [(nb, recorded_seconds(nb, timings)) for nb in notebooks]
    unrecorded = [str(nb) for nb, s in rows if s == float("inf")]
    if budget_s and unrecorded:
        raise UnrecordedError(
            f"no recorded execution time in book/_timings.json for: {', '.join(unrecorded)}. The runner records one "
            "whenever it executes a notebook (`python -m mfutils.runner execute NAME`, or `make book`), so these were "
            "not executed by it and a budget cannot tell whether they fit; execute them through the runner, or "
            "re-execute everything with no budget (`make test-full`)")
    return sorted(rows, key=lambda r: (r[1], str(r[0])))


def run(notebooks: list[Path], timings: list[dict], budget_s: float, nbval_args: list[str],
        run_one=None, clock=time.monotonic) -> list[Outcome]:
    """Re-execute what fits ``budget_s`` (0: everything); ``run_one(notebook) -> passed``."""
    run_one = run_one or (lambda nb: _nbval(nb, nbval_args))
    start = clock()
    done: list[Outcome] = []
    for nb, recorded in plan(notebooks, timings, budget_s):
        out = Outcome(str(nb), recorded, predict(recorded, done))
        left = budget_s - (clock() - start)
        if budget_s and out.predicted_s > left:
            print(f"nbval {nb}: not re-executed, predicted {_minutes(out.predicted_s)} on this machine "
                  f"against {_minutes(max(left, 0))} of budget left", flush=True)
            done.append(out)
            continue
        t0 = clock()
        passed = run_one(nb)
        out.seconds = clock() - t0
        out.status = "passed" if passed else "FAILED"
        print(f"nbval {nb}: {out.status} in {_minutes(out.seconds)} (recorded {_minutes(recorded)})", flush=True)
        done.append(out)
    return done


def _nbval(notebook: Path, args: list[str]) -> bool:
    cmd = [sys.executable, "-m", "pytest", "-q", "--nbval", str(notebook), *args]
    return subprocess.run(cmd).returncode == 0


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
        lines.append(f"{skipped} notebook(s) not re-executed: this machine is too slow for them within the budget; "
                     "`make test-full` re-executes every notebook")
    lines.append(f"nbval: {passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mfutils.nbval_budget", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=40.0, help="wall-clock minutes for all notebooks; 0: no limit")
    ap.add_argument("--timings", default="book/_timings.json")
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
    try:
        outcomes = run(args.notebooks, timings, args.budget_min * 60, nbval_args)
    except UnrecordedError as err:
        print(f"nbval: {err}", file=sys.stderr)
        return 2
    print(summary(outcomes), flush=True)
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
