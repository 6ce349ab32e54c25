"""The chapters' MyST sources read as notebooks with stable ids and a parameters cell each."""

from __future__ import annotations

import pytest

from mfutils.book import runner
from mfutils.book.sources import read_source


@pytest.mark.parametrize("src", [s for s, _ in runner.notebooks()], ids=lambda p: p.stem)
def test_every_source_reads_with_stable_ids_and_parameters(src):
    nb = read_source(src)
    assert [c["id"] for c in nb.cells] == [f"cell-{i:02d}" for i in range(len(nb.cells))]
    assert "jupytext" not in nb.metadata and nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0]["cell_type"] == "markdown" and nb.cells[0]["source"].startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{src.name}: one cell tagged 'parameters' (papermill injects after it)"


def test_the_executed_notebook_has_the_sources_cells(tmp_path):
    """The executed book holds exactly the source's cells: a stale executed page would show old code."""
    import json

    for src, executed in runner.notebooks():
        cells = [(c["cell_type"], c["source"]) for c in read_source(src).cells]
        done = json.loads(executed.read_text())["cells"]
        # papermill adds one cell after 'parameters' only when parameters are injected (never for the book)
        assert [(c["cell_type"], "".join(c["source"])) for c in done] == cells, f"{executed.name} is stale: re-execute it"
