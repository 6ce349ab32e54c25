"""Execute the chapters through papermill, then build the HTML with execution off.

    python -m mfutils all          # execute every chapter, then build the HTML
    python -m mfutils execute [NAME ...] [-p key value ...] [--params-file F]
    python -m mfutils compare [NAME ...]  # the comparison model's run (notebooks/comparison.yaml)
    python -m mfutils html
    python -m mfutils check [NAME ...] [-p key value ...]   # dry run: parameters, model, data
    python -m mfutils readme        # the README's results at a glance, from results/

Each chapter runs in order, in a fresh kernel, with a time limit; a failure names the
chapter and the cell and stops the run (later chapters may read earlier results). Executed
chapters go to ``book/chapters/``; per-chapter wall time and peak memory go to
``book/_timings.json``. Executing the whole book also runs the comparison: every chapter on the
comparison model with ``notebooks/comparison.yaml``'s parameters, its
notebooks into ``_executed/comparison/`` and its results beside the book's in ``results/``, before the pages
that read both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from mfutils.runs.locks import LockHeld, hold
from mfutils.runs.paths import project_root
from mfutils.book.sources import SUFFIX, write_notebook

NOTEBOOKS = "notebooks"
EXECUTED = Path("book") / "chapters"
TIMINGS = Path("book") / "_timings.json"
#: seconds a cell may run on the machine that executed the book; the longest cell there took under
#: 5 minutes, and busy or older 2-core machines ran chapters up to 7.6x slower (2026-12-06)
DEFAULT_TIMEOUT = 1800
#: a whole chapter may take this many per-cell limits before the runner stops it as hung
CHAPTER_GUARD = 4
#: exit status of an interrupted run (128 + SIGINT, as a shell reports it)
INTERRUPTED = 130


#: book pages that are notebooks too, executed after the chapters (the front page reads their results)
PAGES = ("organism", "reproduce_on_gpu", "index")
ENVIRONMENT = Path("book") / "environment.md"
#: the latest `make bench` report (scripts/benchmark.py writes it; the environment page shows its engine table)
BENCHMARK = Path("book") / "_benchmark.json"
#: packages whose versions the environment page records
RECORDED = ("torch", "transformers", "numpy", "pandas", "pyarrow", "scipy", "matplotlib", "seaborn", "papermill",
            "nbformat", "jupyter-book", "sphinx", "myst-nb")


def chapters(root: Path | None = None) -> list[Path]:
    root = root or project_root()
    return sorted((root / NOTEBOOKS).glob(f"[0-9][0-9]_*{SUFFIX}"))


def notebooks(root: Path | None = None) -> list[tuple[Path, Path]]:
    """(source, executed) pairs in execution order: the chapters, then the other pages."""
    root = root or project_root()
    pairs = [(src, root / EXECUTED / f"{src.stem}.ipynb") for src in chapters(root)]
    pairs += [(root / NOTEBOOKS / f"{p}{SUFFIX}", root / "book" / f"{p}.ipynb") for p in PAGES]
    return pairs


def scaled_timeout(base: int = DEFAULT_TIMEOUT, root: Path | None = None) -> tuple[int, str]:
    """The per-cell limit on this machine: ``base`` x (the book's machine's matrix-product probe
    over this one's) when this one is slower, never less than ``base``. Returns ``(seconds, why)``."""
    from mfutils.runs.machine import matmul_gflops

    path = (root or project_root()) / TIMINGS
    recorded = [t.get("environment", {}).get("matmul_gflops") for t in
                (json.loads(path.read_text()) if path.exists() else [])]
    recorded = sorted(g for g in recorded if g)
    if not recorded:
        return base, f"per-cell limit {base} s (no recorded machine to compare with)"
    book, here = recorded[len(recorded) // 2], matmul_gflops()
    factor = max(1.0, book / here)
    return int(base * factor), (f"per-cell limit {int(base * factor)} s ({base} s x {factor:.2f}: this machine's probe "
                                f"{here:g} GFLOP/s per thread against the book's {book:g})")


def _parse_value(text: str):
    """papermill-style ``-p`` values: int, float, bool, else string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "true": True, "false": False}.get(text, text)


def execute_one(src: Path, dst: Path, parameters: dict, timeout: int) -> dict:
    """Run one chapter in a child process (so its peak memory can be measured)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "mfutils.book.runner", "_one", str(src), str(dst), json.dumps(parameters), str(timeout),
               str(stats)]
        t0 = time.perf_counter()
        # its own session: Ctrl-C reaches this process only, which then stops the chapter as a
        # whole. Sent to the terminal's process group, SIGINT interrupted the kernel's cell and
        # papermill carried on to the next chapter (measured)
        proc = subprocess.Popen(cmd, cwd=project_root(), start_new_session=True)
        try:
            # a guard for a hang that papermill's per-cell limit does not catch, not a chapter budget
            proc.wait(timeout=CHAPTER_GUARD * timeout + 120)
        except subprocess.TimeoutExpired:
            print(f"\nchapter {src.stem}: still running after {CHAPTER_GUARD * timeout + 120} s, though no cell passed "
                  f"its {timeout} s limit; stopped. Run again with a larger --timeout if this machine is this slow.",
                  file=sys.stderr, flush=True)
            _stop(proc)
        except BaseException:  # Ctrl-C: stop the chapter, keep its partial notebook
            _stop(proc)
            raise
        seconds = time.perf_counter() - t0
        peak = json.loads(stats.read_text())["peak_rss_mb"] if stats.exists() else None
    return {"chapter": src.stem, "ok": proc.returncode == 0, "seconds": round(seconds, 1), "peak_rss_mb": peak,
            "executed": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """Stop a chapter's process: SIGTERM (papermill shuts its kernel down), then kill its session."""
    import signal

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything the chapter left in its session
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _one(src: str, dst: str, parameters: str, timeout: str, stats: str) -> int:
    import signal

    # the parent stops a chapter with SIGTERM; as KeyboardInterrupt it unwinds papermill, which
    # shuts its kernel down, instead of killing this process with the kernel left running
    signal.signal(signal.SIGTERM, _interrupted)
    # the kernel inherits file descriptor 2: its own noise (a TCP warning, and on a stop a
    # 20-line traceback of a closed socket) goes to a log beside the stats, and this process's
    # messages to the terminal
    terminal = os.dup(2)
    with open(Path(stats).with_name("kernel.log"), "w") as log:
        os.dup2(log.fileno(), 2)
    sys.stderr = os.fdopen(terminal, "w", buffering=1)
    try:
        code = _run_papermill(src, dst, parameters, timeout)
    except KeyboardInterrupt:
        code = INTERRUPTED  # the parent says what was stopped and what exists, in one line
    # the kernel is this process's child: its peak resident memory is the chapter's
    kernel = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(stats).write_text(json.dumps({"peak_rss_mb": round(kernel)}))
    return code


def _run_papermill(src: str, dst: str, parameters: str, timeout: str) -> int:
    """Execute source ``src`` into ``dst``; only a finished run replaces ``dst``."""
    import tempfile

    import papermill as pm
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    dst_path = Path(dst)
    tmp = dst_path.with_name(dst_path.stem + ".partial.ipynb")
    with tempfile.TemporaryDirectory() as folder:
        notebook = Path(src)
        if notebook.suffix == SUFFIX:  # a MyST source; papermill reads notebooks
            notebook = write_notebook(notebook, Path(folder) / f"{notebook.stem}.ipynb")
        try:
            pm.execute_notebook(
                str(notebook), str(tmp), parameters=json.loads(parameters), cwd=str(project_root()),
                kernel_name="python3", progress_bar=sys.stderr.isatty(), execution_timeout=int(timeout),
                report_mode=False, log_output=False,
                # saved after every cell, so an interrupted or failed chapter leaves what it had done
                request_save_on_cell_execute=True,
            )
        except PapermillExecutionError as err:
            print(f"\nchapter {Path(src).stem} failed in cell {err.cell_index} (execution count {err.exec_count}): "
                  f"{err.ename}: {err.evalue}\n(partial notebook kept at {tmp})", file=sys.stderr)
            return 1
        except CellTimeoutError:
            print(f"\nchapter {Path(src).stem}: a cell ran past the per-cell limit of {int(timeout)} s and was stopped. "
                  "This machine may be slower or busier than the one the limit was set for; run again with a larger "
                  f"limit, e.g. `python -m mfutils execute {Path(src).stem[:2]} --timeout {2 * int(timeout)}`."
                  f"\n(partial notebook kept at {tmp})", file=sys.stderr)
            return 1
    _strip_volatile(tmp)
    os.replace(tmp, dst_path)  # only a finished chapter replaces the committed one
    return 0


def _strip_volatile(path: Path, root: Path | None = None) -> None:
    """Drop papermill's timing metadata, and the checkout's own folder from the outputs (a
    chapter shows ``PosixPath('results/…')``, not the path of the machine that executed it), so
    that re-execution with the same parameters is byte-stable wherever the checkout lives."""
    import nbformat

    prefix = f"{(root or project_root()).resolve()}/"
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if isinstance(out.get("text"), str):
                out["text"] = out["text"].replace(prefix, "")
            for mime, value in out.get("data", {}).items():
                if isinstance(value, str) and mime.startswith("text/"):
                    out["data"][mime] = value.replace(prefix, "")
    nb.metadata.get("kernelspec", {})["display_name"] = "Python 3"
    nbformat.write(nb, path)


def execute(names: list[str], parameters: dict, timeout: int, out: Path | None = None) -> list[dict]:
    root = project_root()
    (root / EXECUTED).mkdir(parents=True, exist_ok=True)
    every = notebooks(root)
    selected = [(s, d) for s, d in every if not names or any(s.stem.startswith(n) for n in names)]
    if not selected:
        raise SystemExit(f"no chapter matches {names}; chapters and pages: {[s.stem for s, _ in every]}")
    if parameters or out:  # the book shows the organism; other parameters execute beside it, never over it
        out = Path(out) if out else root / "_executed" / _slug(parameters)
        selected = [(s, out / f"{s.stem}.ipynb") for s, _ in selected]
        out.mkdir(parents=True, exist_ok=True)
    whole_book = not names and not parameters and not out
    if whole_book:  # chapters, then the comparison run, then the pages that read both
        pages = [(s, d) for s, d in selected if s.stem in PAGES]
        timings = run_selected([x for x in selected if x not in pages], parameters, timeout, record=True)
        timings += compare([], timeout)
        timings += run_selected(pages, parameters, timeout, record=True)
        return timings
    timings = run_selected(selected, parameters, timeout, record=not out)
    if out:
        print(f"executed notebooks: {selected[0][1].parent}")
    return timings


#: where the comparison run's executed notebooks go (its results go to results/ as every run's)
COMPARED = Path("_executed") / "comparison"


def compare(names: list[str], timeout: int) -> list[dict]:
    """Execute the chapters (all, or those ``names`` start) on the comparison model, each with
    :func:`mfutils.book.chapters.comparison_overrides`; timings are recorded as ``<chapter> (comparison)``."""
    from mfutils.book.chapters import comparison_overrides

    root = project_root()
    (root / COMPARED).mkdir(parents=True, exist_ok=True)
    timings = []
    try:
        for src in chapters(root):
            if names and not any(src.stem.startswith(n) for n in names):
                continue
            t = run_selected([(src, root / COMPARED / f"{src.stem}.ipynb")], comparison_overrides(src.stem), timeout)
            timings += [{**x, "chapter": f"{x['chapter']} (comparison)"} for x in t]
    finally:
        # a chapter that fails or is interrupted stops the run; those finished before it keep their times
        if timings:
            _record(root, timings)
    return timings


def run_selected(selected: list[tuple[Path, Path]], parameters: dict, timeout: int, record: bool = False) -> list[dict]:
    """Execute ``(source, destination)`` pairs in order; stop at the first failure or on Ctrl-C.

    ``record``: merge the timings into the book's record (the organism defaults only). An
    interrupted run exits with :data:`INTERRUPTED`; the chapters finished before it are recorded,
    the interrupted one's destination is untouched and its partial notebook stays beside it.
    """
    import signal

    root = project_root()
    # a kill (SIGTERM) stops the run as Ctrl-C does: killed outright, this process would leave
    # the chapter's own session, kernel included, running
    signal.signal(signal.SIGTERM, _interrupted)
    timings = []
    for i, (src, dst) in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {src.stem} ...", flush=True)
        try:
            with _notebook_lock(dst):
                result = execute_one(src, dst, parameters, timeout)
        except KeyboardInterrupt:
            partial = dst.with_name(dst.stem + ".partial.ipynb")
            print(f"\n[{i}/{len(selected)}] {src.stem}: interrupted. "
                  + (f"{dst} is as it was before this run" if dst.exists() else f"{dst} does not exist (never executed)")
                  + (f"; the cells run so far are in {partial}" if partial.exists() else "")
                  + "; its results folder was not finished, so no chapter reads it.", file=sys.stderr, flush=True)
            if timings and record:  # the chapters that did finish are recorded as finished
                _record(root, timings)
            raise SystemExit(INTERRUPTED) from None
        timings.append(result)
        print(f"[{i}/{len(selected)}] {src.stem}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s, "
              f"peak {result['peak_rss_mb']} MB", flush=True)
        if not result["ok"]:
            finished = [t for t in timings if t["ok"]]
            if finished and record:  # the chapters that did finish before it are recorded as finished
                _record(root, finished)
            raise SystemExit(1)
    if record:  # only the organism defaults describe the book
        _record(root, timings)
    return timings


class ChapterBusyError(SystemExit):
    """Another runner is executing the same chapter into the same notebook."""


@contextlib.contextmanager
def _notebook_lock(dst: Path):
    """Hold ``<dst>.lock`` while the chapter executes; refuse (exit 2) if another runner holds it.

    Two runs of one chapter would share its ``.partial.ipynb`` and its results folder (which
    :class:`mfutils.runs.results.RunWriter` locks too, from inside the kernel, for runs from a notebook)."""
    try:
        handle = hold(dst.with_name(dst.name + ".lock"))
    except LockHeld as err:
        print(f"{dst.stem} is being executed by another runner ({err.holder}); wait for it to finish or stop it, "
              "then run again", file=sys.stderr, flush=True)
        raise ChapterBusyError(2) from None
    with handle:
        yield


def _slug(parameters: dict) -> str:
    import hashlib

    model = str(parameters.get("model_id", "organism")).rstrip("/").split("/")[-1]
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:8]
    return f"{model}-{digest}"


def environment() -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from mfutils.runs.machine import cpu_model, matmul_gflops

    # the CPU and its probe speed let a time recorded here be read on another machine (nbval_budget)
    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "cpu": cpu_model(), "matmul_gflops": matmul_gflops()}
    for name in RECORDED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _record(root: Path, timings: list[dict]) -> None:
    """Merge these runs into ``book/_timings.json`` and rewrite the environment page."""
    path = root / TIMINGS
    old = {t["chapter"]: t for t in json.loads(path.read_text())} if path.exists() else {}
    env = environment()
    for t in timings:
        old[t["chapter"]] = {**t, "environment": env}
    stems = [s.stem for s, _ in notebooks(root)]
    order = stems[:len(chapters(root))] + [f"{s.stem} (comparison)" for s in chapters(root)] + stems[len(chapters(root)):]
    merged = [old[k] for k in order if k in old]
    path.write_text(json.dumps(merged, indent=1) + "\n")
    write_environment_page(root, env)


#: environment entries about the hardware, shown in the timing table's machine column
MACHINE_KEYS = ("machine", "cpus", "cpu", "matmul_gflops")


def _machine(e: dict) -> str:
    """``x86_64, AMD EPYC, 2 CPUs, 35 GFLOP/s per thread``; runs recorded before the CPU was
    (2026-12-02) have only the architecture and the count."""
    parts = [e["machine"]] + ([e["cpu"]] if e.get("cpu") else []) + [f"{e['cpus']} CPUs"]
    if e.get("matmul_gflops"):
        parts.append(f"{e['matmul_gflops']:g} GFLOP/s per thread")
    return ", ".join(parts)


def _threads_words(threads) -> str:
    """The benchmark's thread probe in words: ", 290 ms per forward pass on 1 thread, 168 ms on 2
    (batch 64)"; an old record's plain count as ", 1 thread(s)"."""
    if not isinstance(threads, list):
        return f", {threads} thread(s)"
    parts = [f"{r['median ms / forward']:.0f} ms on {r['threads']} thread{'s' * (r['threads'] > 1)}" for r in threads]
    batch = {r.get("batch") for r in threads}
    return ", median forward pass " + ", ".join(parts) + (f" (batch {batch.pop()})" if len(batch) == 1 else "")


def write_environment_page(root: Path, env: dict | None = None) -> None:
    """The environment page from ``book/_timings.json`` (chapter runs) and, when ``make bench``
    has written it, ``book/_benchmark.json`` (naive versus incremental recomputation)."""
    path = root / TIMINGS
    merged = json.loads(path.read_text()) if path.exists() else []
    env = env or (merged[-1]["environment"] if merged else environment())
    lines = ["# Environment and timings", "",
             "Written by `python -m mfutils` each time it executes the book with its default parameters:",
             "what each chapter ran with, how long it took and its kernel's peak resident memory.",
             "Times are wall-clock on the set-up named below the table, with the thread count the chapter's",
             "`num_threads` parameter sets. The probe is a single-thread matrix-product speed measured when",
             "the chapter ran (`mfutils.runs.machine`): chapters executed on different machines are compared through it.",
             "A chapter re-executed on another CPU can differ from its committed results in the sixth digit;",
             "bit-for-bit reruns hold on the same machine and packages.", "",
             "| notebook | executed | seconds | peak memory (MB) | probe (GFLOP/s per thread) | set-up |",
             "|---|---|---|---|---|---|"]
    setups: dict[str, str] = {}  # each machine and package set once, named by a letter
    for t in merged:
        e = t["environment"]
        setup = (f"{_machine({**e, 'matmul_gflops': None})}; python {e['python']}, torch {e['torch']}, "
                 f"transformers {e['transformers']}")
        key = setups.setdefault(setup, chr(ord("A") + len(setups)))
        probe = f"{e['matmul_gflops']:g}" if e.get("matmul_gflops") else "—"
        lines.append(f"| {t['chapter']} | {t['executed']} | {t['seconds']:,.0f} | {t['peak_rss_mb']:,} | {probe} | {key} |")
    lines += [""] + [f"Set-up {key}: {setup}." for setup, key in setups.items()]
    total = sum(t["seconds"] for t in merged if not t["chapter"].endswith("(comparison)"))
    compared = sum(t["seconds"] for t in merged if t["chapter"].endswith("(comparison)"))
    lines += ["", f"The book: {total:.0f} s ({total / 60:.1f} min)."
              + (f" The comparison run (rows marked *comparison*: the comparison model, `notebooks/comparison.yaml`): "
                 f"{compared:.0f} s ({compared / 60:.1f} min)." if compared else ""),
              "", "## Package versions (latest run)", "",
              "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env.items() if k not in MACHINE_KEYS]
    bench = root / BENCHMARK
    if bench.exists():
        b = json.loads(bench.read_text())
        m = b["machine"]
        lines += ["", "## Naive versus incremental recomputation (`make bench`)", "",
                  f"One run of `scripts/benchmark.py` on {b.get('measured', 'an unrecorded date')} (python {m['python']}, "
                  f"torch {m['torch']}, {m['cpu']}{_threads_words(b.get('threads', 1))}): forward-equivalents per sample and "
                  "wall time of each task, both engines on the same samples; the last column is the largest "
                  "difference of the answers' logit difference from the naive engine's.", "",
                  "| model | task | engine | forward-equivalents / sample | share of naive | seconds | max difference |",
                  "|---|---|---|---|---|---|---|"]
        for r in b["engine"]:
            diff = r.get("max |Δ logit diff| vs naive")
            lines.append(f"| {r['model']} | {r['task']} | {r['engine']} | {r['forward-equivalents / sample']} | "
                         f"{r['share of naive']:.0%} | {r['seconds']} | {'' if diff is None else ('0' if diff == 0 else f'{diff:.1e}')} |")
        if b.get("sweep_by_edge"):
            lines += ["", "Where the knockout sweep's work goes, per edge, as a share of that edge's naive cost "
                      "(one full pass per layer). *Incremental*: what the engine spends, each sample recomputed from "
                      "its own first target position to its own last token, padded to the batch's longest suffix. "
                      "*Per-sample floor*: the same without the padding, the least any exact layer-by-layer "
                      "recomputation of the edge can spend on this prompt layout.", "",
                      "| model | edge | incremental | per-sample floor |", "|---|---|---|---|"]
            lines += [f"| {r['model']} | {r['edge']} | {r['incremental']:.1%} | {r['per-sample floor']:.1%} |"
                      for r in b["sweep_by_edge"]]
    (root / ENVIRONMENT).write_text("\n".join(lines) + "\n")


def html() -> None:
    root = project_root()
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--builder", "html", "-W", "-n",
           "--keep-going"]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)
    print(f"book: {root / '_build' / 'html' / 'index.html'}")


def read_params_file(path: Path) -> dict:
    """A parameters file: a YAML mapping of parameter names to values. Raises ``ValueError``
    with one clear sentence for a missing file, a file that is not YAML, or YAML of another shape."""
    import yaml

    if not path.is_file():
        raise ValueError(f"parameters file {path} not found; the families' files are in notebooks/params/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        raise ValueError(f"parameters file {path} is not valid YAML"
                         + (f" (line {where.line + 1}, column {where.column + 1})" if where else "")
                         + f": {getattr(err, 'problem', None) or err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"parameters file {path} must be a mapping of parameter names to values (`n_samples: 64`), "
                         f"not a YAML {type(data).__name__}")
    return data


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_one":
        return _one(*argv[1:6])
    ap = argparse.ArgumentParser(prog="python -m mfutils", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["all", "execute", "compare", "html", "check", "readme"])
    ap.add_argument("names", nargs="*", help="chapter name prefixes (default: all)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), help="chapter parameter")
    ap.add_argument("--params-file", help="YAML file of chapter parameters (e.g. notebooks/params/llava-1.5-7b.yaml)")
    ap.add_argument("--timeout", type=int, help=f"seconds a cell may run (default: {DEFAULT_TIMEOUT}, scaled up on a "
                    "machine slower than the book's)")
    ap.add_argument("--out", help="folder for the executed notebooks (default: the book, or _executed/ for non-default parameters)")
    args = ap.parse_args(argv)
    stems = [src.stem for src, _ in notebooks()]
    unknown = [n for n in args.names if not any(stem.startswith(n) for stem in stems)]
    if unknown:
        print(f"no chapter or page matches {', '.join(unknown)}; names (or their prefixes): {', '.join(stems)}",
              file=sys.stderr)
        return 2
    parameters: dict = {}
    if args.params_file:
        try:
            parameters.update(read_params_file(Path(args.params_file)))
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
    parameters.update({k: _parse_value(v) for k, v in args.p})
    if args.command in ("all", "execute", "compare"):
        if args.timeout is None:
            args.timeout, why = scaled_timeout()
            print(why, flush=True)
    t0 = time.perf_counter()
    if args.command in ("all", "execute", "check"):
        from mfutils.book.chapters import CHAPTERS
        from mfutils.book.dryrun import DryRunError, dry_run

        picked = [c for c in CHAPTERS if not args.names or any(c.startswith(n) for n in args.names)]
        try:
            for line in dry_run(picked, parameters):
                print("check:", line, flush=True)
        except DryRunError as err:
            print(err, file=sys.stderr)
            return 2
        if args.command == "check":
            return 0
    if args.command in ("all", "execute"):
        execute(args.names, parameters, args.timeout, Path(args.out) if args.out else None)
    if args.command == "compare":
        compare(args.names, args.timeout)
    if args.command in ("all", "html"):
        html()
    if args.command in ("all", "readme"):
        from mfutils.book.chapters import write_glance

        print("README.md: results at a glance " + ("rewritten" if write_glance() else "unchanged"))
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
