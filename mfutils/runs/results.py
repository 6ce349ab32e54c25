"""Result folders that cannot be mistaken for finished when a run was interrupted.

A run writes into ``<run_dir>.partial/``; :meth:`RunWriter.finish` writes a manifest
(``_COMPLETE.json`` with each file's SHA-256) and renames the folder into place in one step.
A crash leaves only the ``.partial`` folder -- the finished results of an earlier run with
the same parameters stay intact until the new run finishes.

Two runs of the same parameters would write into the same ``.partial`` folder, each emptying
it for the other (seen: two ``execute 00`` started 2 s apart, the first "finished" without two
of its files). So a writer holds a lock on ``<run_dir>.lock`` from its start to its finish, and
a second writer is refused with a message naming the first; the operating system releases the
lock when its process ends, however it ends. A run finishes only with every file its chapter
declares (``spec.OUTPUTS``), and :func:`load_run` given a spec accepts a folder only with them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from mfutils.runs.locks import LockHeld, hold
from mfutils.runs.params import RunSpec

MANIFEST = "_COMPLETE.json"


class IncompleteResultsError(FileNotFoundError):
    """A results folder without a completion manifest (never finished, or tampered with)."""


class RunInProgressError(RuntimeError):
    """Another run with the same parameters is writing the same results folder."""


def _lock(final: Path):
    """Hold ``<final>.lock``: the open file, whose closing releases it (:func:`mfutils.runs.locks.hold`)."""
    try:
        return hold(final.with_name(final.name + ".lock"))
    except LockHeld as err:
        raise RunInProgressError(
            f"{final} is being written by another run with the same parameters ({err.holder}). Two runs would "
            "empty each other's files: wait for it to finish, or stop it, then run again.") from None


def _json_default(obj):
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class RunWriter:
    """Collects one run's outputs; nothing is visible at ``spec.run_dir()`` until :meth:`finish`."""

    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.final = spec.run_dir()
        self.tmp = self.final.with_name(self.final.name + ".partial")
        self._lock = _lock(self.final)  # before the partial folder is touched
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.write_json("spec.json", spec.to_dict())

    def path(self, name: str) -> Path:
        return self.tmp / name

    def write_json(self, name: str, obj) -> Path:
        p = self.path(name)
        p.write_text(json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n")
        return p

    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """Parquet for analysis, plus CSV beside it for readers without pyarrow."""
        p = self.path(name if name.endswith(".parquet") else name + ".parquet")
        df.to_parquet(p, index=False)
        df.to_csv(p.with_suffix(".csv"), index=False)
        return p

    def save_figure(self, fig, name: str, data: pd.DataFrame | None = None) -> Path:
        """Save ``fig`` as PNG (fixed metadata so reruns are byte-identical) and its data as CSV."""
        from mfutils.book.plotting import DPI, check_readable

        check_readable(fig)
        p = self.path(name if name.endswith(".png") else name + ".png")
        fig.savefig(p, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
        if data is not None:
            data.to_csv(p.with_suffix(".csv"), index=False)
        return p

    def finish(self) -> Path:
        """Write the manifest and move the folder into place; refuses (the finished folder of an
        earlier run untouched, this run's partial folder kept) if a declared output is missing."""
        missing = [n for n in getattr(self.spec, "OUTPUTS", ()) if not (self.tmp / n).is_file()]
        if missing:
            raise IncompleteResultsError(
                f"run not finished: {', '.join(missing)} missing from {self.tmp} (declared by {type(self.spec).__name__}"
                f".OUTPUTS); {self.final} is unchanged")
        files = {
            str(f.relative_to(self.tmp)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(self.tmp.rglob("*"))
            if f.is_file()
        }
        (self.tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
        old = self.final.with_name(self.final.name + ".old")
        if self.final.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old.exists():
            shutil.rmtree(old)
        self._lock.close()
        return self.final


def load_run(run: "Path | str | RunSpec", verify: bool = True) -> dict:
    """The finished run's ``results.json`` and spec; raises if the run never finished.

    ``run``: a results folder, or a spec (its folder; then every file the spec declares must be
    there too)."""
    declared = getattr(run, "OUTPUTS", ()) if isinstance(run, RunSpec) else ()
    run_dir = run.run_dir() if isinstance(run, RunSpec) else Path(run)
    missing = [n for n in declared if not (run_dir / n).is_file()]
    if (run_dir / MANIFEST).exists() and missing:
        raise IncompleteResultsError(f"{run_dir} lacks {', '.join(missing)}, which its chapter declares: re-run the "
                                     "chapter with the same parameters")
    manifest = run_dir / MANIFEST
    if not manifest.exists():
        raise IncompleteResultsError(
            f"{run_dir} has no {MANIFEST}: the run did not finish. Re-run the chapter with the same parameters."
        )
    if verify:
        files = json.loads(manifest.read_text())["files"]
        for name, digest in files.items():
            f = run_dir / name
            if not f.exists() or hashlib.sha256(f.read_bytes()).hexdigest() != digest:
                raise IncompleteResultsError(f"{f} is missing or changed since the run finished")
    out = {"spec": json.loads((run_dir / "spec.json").read_text()), "dir": run_dir}
    if (run_dir / "results.json").exists():
        out["results"] = json.loads((run_dir / "results.json").read_text())
    return out


def finished_runs(output_dir: str | Path, chapter: str) -> list[Path]:
    """Finished run folders of one chapter (partial ones are ignored)."""
    from mfutils.runs.paths import results_root

    root = results_root(str(output_dir)) / chapter
    return sorted(p.parent for p in root.glob(f"*/*/{MANIFEST}"))
