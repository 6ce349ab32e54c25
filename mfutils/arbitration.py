"""Chapter 02: deep arbitration -- spec and verdicts (the lens itself is in :mod:`mfutils.lens`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import bootstrap_ci
from .params import RunSpec


@dataclass(frozen=True)
class ArbitrationSpec(RunSpec):
    chapter: str = "02_deep_arbitration"
    n_samples: int = 128
    n_boot: int = 500


def emergence_layer(margin_by_layer: np.ndarray) -> int:
    """First layer whose mean margin exceeds half the final layer's."""
    m = np.asarray(margin_by_layer)
    return int(np.argmax(m > 0.5 * m[-1]))


def verdicts(margin: pd.DataFrame, ldar_df: pd.DataFrame, attn_margin: dict[str, np.ndarray], n_layers: int) -> pd.DataFrame:
    """``margin``: layer x target mean lens margins; ``attn_margin[target]``: ``(B, L)``
    attention contributions to the margin."""
    L = n_layers
    emerge = {t: emergence_layer(margin[t].to_numpy()) for t in margin.columns}
    final = {t: float(margin[t].iloc[-1]) for t in margin.columns}
    deep = ldar_df[ldar_df["layer"] >= L // 2].groupby("target")["LDAR (instruction anchor)"].max()
    writes = {t: bootstrap_ci(a[:, L // 2 :].sum(1)) for t, a in attn_margin.items()}
    late = [emerge[t] >= L // 2 for t in emerge]
    return pd.DataFrame([
        {"claim": "The margin is ≈ 0 early and appears only in deep layers", "paper": "≈0 to layer 18/28, +3.5 at 27/28",
         "ours": ", ".join(f"{t}: emerges at layer {emerge[t]}/{L}, final {final[t]:+.2f}" for t in emerge),
         "verdict": "reproduced" if all(late) else ("partly" if any(late) else "not reproduced")},
        {"claim": "LDAR at the instruction anchor > 95% in deep layers", "paper": "> 95%",
         "ours": ", ".join(f"{t}: max {v:.1%}" for t, v in deep.items()),
         "verdict": "reproduced" if (deep > 0.95).all() else ("partly" if (deep > 0.8).any() else "not reproduced")},
        {"claim": "Deep attention writes the instructed answer", "paper": "undefined ('instruction-compliant subspace')",
         "ours": ", ".join(f"{t}: deep-half attention adds {m:+.2f} [{lo:+.2f}, {hi:+.2f}] to the margin"
                           for t, (m, lo, hi) in writes.items()),
         "verdict": "reproduced" if all(lo > 0 for _, lo, _ in writes.values())
         else ("partly" if any(lo > 0 for _, lo, _ in writes.values()) else "not reproduced")},
    ])
