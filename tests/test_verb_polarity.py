"""The verb-polarity diagnostic's two measures (scripts/verb_polarity.py), on data whose answer is known."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location("verb_polarity", Path(__file__).parents[1] / "scripts" / "verb_polarity.py")
vp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vp)


def test_auc_orders_pairs_and_counts_ties_half():
    assert vp.auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert vp.auc([0.0], [1.0]) == 0.0
    assert vp.auc([1.0, 1.0], [1.0]) == 0.5


def test_leave_one_out_probe_reads_a_planted_direction_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([1.0] * 30 + [-1.0] * 30)
    noise = torch.randn(60, 40, generator=g)
    planted = noise.clone()
    planted[:, 0] += 3 * y
    assert vp.loo_ridge_accuracy(planted, y) >= 0.9
    assert vp.loo_ridge_accuracy(noise, y) <= 0.75
