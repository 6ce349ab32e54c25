"""Where things live: the project root, the shipped organism, the results tree."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout that holds this package (found from the package's own location).

    ``MFUTILS_ROOT`` overrides it, e.g. for an installed (non-editable) copy.
    """
    env = os.environ.get("MFUTILS_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]  # mfutils/runs/paths.py -> the checkout
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd().resolve()


def organism_dir() -> Path:
    return project_root() / "models" / "organism"


def results_root(output_dir: str = "results") -> Path:
    p = Path(output_dir)
    return p if p.is_absolute() else project_root() / p


def shared_dir() -> Path:
    """``../shared`` beside the checkout (the paper's items and reference curves)."""
    return project_root().parent / "shared"
