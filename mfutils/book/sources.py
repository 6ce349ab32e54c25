"""The chapters' sources: MyST Markdown notebooks (``notebooks/*.md``), read with jupytext.

A reviewer reads a chapter's diff as Markdown and Python, not notebook JSON. Papermill runs
the notebook :func:`read_source` builds from it; its cell ids are the cells' positions, so the
executed notebook is the same bytes from run to run.
"""

from __future__ import annotations

from pathlib import Path

#: the suffix of a chapter or page source
SUFFIX = ".md"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def read_source(path: str | Path):
    """``path`` (MyST Markdown) as an ``nbformat`` v4 notebook with stable cell ids."""
    import jupytext

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"notebook source {path} not found")
    nb = jupytext.read(path, fmt="md:myst")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


def write_notebook(src: str | Path, dst: str | Path) -> Path:
    """Write the notebook of source ``src`` to ``dst`` (``.ipynb``), e.g. for papermill."""
    import nbformat

    nbformat.write(read_source(src), str(dst))
    return Path(dst)
