"""mfutils: helpers for reproducing *Instruction Anchors* (arXiv 2602.03677).

Submodules are imported lazily by the notebooks; importing the package itself is cheap
and has no side effects (no thread settings, no model loading) beyond one warnings filter.
"""

import warnings

# tqdm warns, on import, that Jupyter widgets are missing; the text would sit in every
# executed chapter and differ between machines with and without ipywidgets
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
