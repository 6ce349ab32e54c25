"""Execute the chapters through papermill, then build the HTML with execution off.

    python -m mfutils.runner all          # execute every chapter, then build the HTML
    python -m mfutils.runner execute [NAME ...] [-p key value ...] [--params-file F]
    python -m mfutils.runner html

Each chapter runs in order, in a fresh kernel, with a time limit; a failure names the
chapter and the cell and stops the run (later chapters may read earlier results). Executed
chapters go to ``book/chapters/``; per-chapter wall time and peak memory go to
``book/_timings.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from .paths import project_root

NOTEBOOKS = "notebooks"
EXECUTED = Path("book") / "chapters"
TIMINGS = Path("book") / "_timings.json"
DEFAULT_TIMEOUT = 1200  # seconds per chapter on the organism (2 CPU cores)


def chapters(root: Path | None = None) -> list[Path]:
    root = root or project_root()
    return sorted((root / NOTEBOOKS).glob("[0-9][0-9]_*.ipynb"))


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
    cmd = [sys.executable, "-m", "mfutils.runner", "_one", str(src), str(dst), json.dumps(parameters), str(timeout)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=project_root(), timeout=timeout + 120)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"chapter": src.stem, "ok": proc.returncode == 0, "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb)}


def _one(src: str, dst: str, parameters: str, timeout: str) -> int:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    dst_path = Path(dst)
    tmp = dst_path.with_name(dst_path.stem + ".partial.ipynb")
    try:
        pm.execute_notebook(
            src, str(tmp), parameters=json.loads(parameters), cwd=str(project_root()), kernel_name="python3",
            progress_bar=sys.stderr.isatty(), execution_timeout=int(timeout), report_mode=False,
            log_output=False, request_save_on_cell_execute=False,
        )
    except PapermillExecutionError as err:
        print(f"\nchapter {Path(src).stem} failed in cell {err.cell_index} (execution count {err.exec_count}): "
              f"{err.ename}: {err.evalue}\n(partial notebook kept at {tmp})", file=sys.stderr)
        return 1
    _strip_volatile(tmp)
    os.replace(tmp, dst_path)  # only a finished chapter replaces the committed one
    return 0


def _strip_volatile(path: Path) -> None:
    """Drop papermill's timing metadata so re-execution with the same parameters is byte-stable."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.get("kernelspec", {})["display_name"] = "Python 3"
    nbformat.write(nb, path)


def execute(names: list[str], parameters: dict, timeout: int) -> list[dict]:
    root = project_root()
    (root / EXECUTED).mkdir(parents=True, exist_ok=True)
    selected = [c for c in chapters(root) if not names or any(c.stem.startswith(n) for n in names)]
    if not selected:
        raise SystemExit(f"no chapter matches {names}; chapters: {[c.stem for c in chapters(root)]}")
    timings = []
    for i, src in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {src.stem} ...", flush=True)
        result = execute_one(src, root / EXECUTED / src.name, parameters, timeout)
        timings.append(result)
        print(f"[{i}/{len(selected)}] {src.stem}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s, "
              f"peak {result['peak_rss_mb']} MB", flush=True)
        if not result["ok"]:
            raise SystemExit(1)
    if not parameters:  # only the organism defaults describe the book
        (root / TIMINGS).write_text(json.dumps(timings, indent=1) + "\n")
    return timings


def html() -> None:
    root = project_root()
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--builder", "html", "-W", "-n",
           "--keep-going"]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)
    print(f"book: {root / '_build' / 'html' / 'index.html'}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_one":
        return _one(*argv[1:5])
    ap = argparse.ArgumentParser(prog="python -m mfutils.runner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["all", "execute", "html"])
    ap.add_argument("names", nargs="*", help="chapter name prefixes (default: all)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), help="chapter parameter")
    ap.add_argument("--params-file", help="YAML file of chapter parameters (e.g. notebooks/params/llava-1.5-7b.yaml)")
    ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per chapter")
    args = ap.parse_args(argv)
    parameters: dict = {}
    if args.params_file:
        import yaml

        parameters.update(yaml.safe_load(Path(args.params_file).read_text()) or {})
    parameters.update({k: _parse_value(v) for k, v in args.p})
    t0 = time.perf_counter()
    if args.command in ("all", "execute"):
        execute(args.names, parameters, args.timeout)
    if args.command in ("all", "html"):
        html()
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
