"""mfutils: helpers for reproducing *Instruction Anchors* (arXiv 2602.03677).

Submodules are imported lazily by the notebooks; importing the package itself is cheap
and has no side effects (no thread settings, no model loading).
"""

__version__ = "0.1.0"
