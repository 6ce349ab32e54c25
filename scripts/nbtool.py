"""Write a chapter notebook from a compact cell list (used when authoring chapters).

    python scripts/nbtool.py SPEC.py OUT.ipynb

SPEC.py defines CELLS = [("md"|"code"|"params"|"hidden", source), ...]; "hidden" is a code
cell whose input the book does not show (tag ``remove-input``). The committed .ipynb files in
notebooks/ are the sources of truth; this only saves typing JSON by hand.
"""

import runpy
import sys

import nbformat


def build(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            c = nbformat.v4.new_code_cell(src)
            if kind == "params":
                c.metadata["tags"] = ["parameters"]
            elif kind == "hidden":
                c.metadata["tags"] = ["remove-input"]
            nb.cells.append(c)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


if __name__ == "__main__":
    cells = runpy.run_path(sys.argv[1])["CELLS"]
    nbformat.write(build(cells), sys.argv[2])
