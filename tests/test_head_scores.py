from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mfutils import synthetic
from mfutils.encoding import encode
from mfutils.head_scores import (ablation_scores, agreement, attribution_scores, direct_scores, model_metric,
                                 score_all, sparsity_curve, top_heads)
from mfutils.interventions import active_hook_count
from mfutils.metrics import answer_tokens


class _LinearToy:
    """Two 'layers' whose o_proj inputs are fixed per-head activations; the metric is linear
    in them, so first-order attribution must equal the exact ablation effect."""

    n_layers, n_heads, head_dim = 2, 3, 2

    def __init__(self):
        torch.manual_seed(0)
        self.projs = [nn.Linear(6, 4, bias=False) for _ in range(2)]
        self.acts = [torch.randn(5, 7, 6) for _ in range(2)]  # per layer (B, T, H*D)
        self.readout = torch.randn(4)

    def o_proj(self, layer):
        return self.projs[layer]

    def metric(self):
        grad = torch.is_grad_enabled()
        return sum((p(a.clone().requires_grad_(grad)) @ self.readout).sum(1) for p, a in zip(self.projs, self.acts))


def test_attribution_equals_exact_effect_for_a_linear_toy():
    toy = _LinearToy()
    exact = ablation_scores(toy, toy.metric)
    approx = attribution_scores(toy, toy.metric)
    assert torch.allclose(exact, approx, atol=1e-4)
    assert active_hook_count() == 0


def test_head_with_zeroed_output_projection_scores_zero(tiny_bundle):
    items = synthetic.paper_conflicts(3, seed=2)
    batch = encode(tiny_bundle, items)
    answers = [answer_tokens(tiny_bundle.tokenizer, it) for it in items]
    ad = tiny_bundle.adapter
    w = ad.o_proj(1).weight
    saved = w.data.clone()
    try:
        w.data[:, 2 * ad.head_dim : 3 * ad.head_dim] = 0  # head (1, 2) writes nothing
        metric = model_metric(tiny_bundle, batch, answers)
        ab = ablation_scores(ad, metric)
        at = attribution_scores(ad, metric)
        di = direct_scores(tiny_bundle, batch, answers)
    finally:
        w.data.copy_(saved)
    assert ab[1, 2] == 0 and abs(float(at[1, 2])) < 1e-6 and abs(float(di[1, 2])) < 1e-6
    assert ab.abs().sum() > 0


def test_score_all_counts_passes(tiny_bundle):
    items = synthetic.paper_conflicts(2, seed=3)
    s = score_all(tiny_bundle, items, batch_size=8)
    ad = tiny_bundle.adapter
    assert s["ablation"].shape == (ad.n_layers, ad.n_heads)
    assert s["passes_per_sample"]["ablation"] == 1 + ad.n_layers * ad.n_heads
    assert s["passes_per_sample"]["attribution"] == 2


def test_top_heads_agreement_and_sparsity():
    s = np.arange(12, dtype=float).reshape(3, 4)
    assert top_heads(s, 0.2) == [(2, 3), (2, 2), (2, 1)]
    assert agreement(s, s)["spearman"] == pytest.approx(1.0) and agreement(s, -s)["top_overlap"] == 0
    c = sparsity_curve(s)
    assert c["share_of_effect"].iloc[-1] == pytest.approx(1.0) and c["share_of_effect"].is_monotonic_increasing
