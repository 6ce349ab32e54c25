"""The paper's own per-layer curves (``reference/paper_curves.csv``), for drawing beside ours."""

from __future__ import annotations

import pandas as pd

from mfutils.runs.paths import project_root
from mfutils.findings.rules import depth

#: the paper's arbitration heads on Qwen2.5-VL-7B: about 39 of its 28 x 28 = 784 heads (≈ 5%);
#: the paper gives no sparsity curve, only this count
PAPER_HEADS = (39, 784)

#: the paper's model sizes (layers) for the relative-depth axis
N_LAYERS = {"Qwen2.5-VL-7B": 28, "InternVL3-14B": 48, "DeepSeek-VL2-Tiny": 12}


def paper_curves(figure: str | None = None, model: str | None = None) -> pd.DataFrame:
    """The reference table, optionally one figure / model, with a ``depth`` column in [0, 1]."""
    path = project_root() / "reference" / "paper_curves.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; it ships with the repository (git checkout -- reference)")
    df = pd.read_csv(path)
    if figure is not None:
        df = df[df["figure"] == figure]
    if model is not None:
        df = df[df["model"] == model]
    df = df.assign(depth=depth(df["layer"], df["model"].map(N_LAYERS)))
    return df.reset_index(drop=True)
