"""Checkpointed head attribution (chapters 04-05 on a GPU) gives the gradients of the plain one,
for every family, and leaves every layer as it found it, also when the block raises."""

from __future__ import annotations

import pytest
import torch

from mfutils.engine import memory
from mfutils.data import synthetic
from mfutils.engine.encoding import encode
from mfutils.findings.head_scores import _alpha_gradient, model_metric
from mfutils.engine.interventions import active_hook_count
from mfutils.engine.metrics import answer_tokens


def _flags(ad):
    return [(l.training, l.__dict__.get("gradient_checkpointing"), l.__dict__.get("_gradient_checkpointing_func"))
            for l in ad.layers]


def test_checkpointed_attribution_equals_the_plain_one(bundle):
    items = synthetic.paper_conflicts(2, seed=5)
    batch = encode(bundle, items)
    answers = [answer_tokens(bundle.tokenizer, it) for it in items]
    ad = bundle.adapter
    metric = model_metric(bundle, batch, answers)
    alpha = torch.full((ad.n_layers, ad.n_heads), 0.75)
    before = _flags(ad)
    recomputed = []
    # count layer 0's MLP runs: a checkpointed layer runs again in the backward pass (its own
    # hooks stay outside the checkpoint, so the count is taken inside it; a pre-hook, as the
    # recomputation stops as soon as it has what the backward pass needs)
    handle = ad.mlp(0).register_forward_pre_hook(lambda *a: recomputed.append(1))
    try:
        plain = _alpha_gradient(ad, metric, alpha, checkpoint=False)
        n_plain = len(recomputed)
        ckpt = _alpha_gradient(ad, metric, alpha, checkpoint=True)
        n_ckpt = len(recomputed) - n_plain
    finally:
        handle.remove()
    assert n_plain == 1 and n_ckpt == 2  # the recomputation really happened
    assert plain.abs().sum() > 0
    assert torch.allclose(plain, ckpt, rtol=1e-4, atol=1e-6)
    assert _flags(ad) == before and not any(l.training for l in ad.layers)
    assert active_hook_count() == 0


def test_checkpointed_layers_restores_the_flags_on_error(tiny_bundle):
    ad = tiny_bundle.adapter
    before = _flags(ad)
    with pytest.raises(RuntimeError, match="inside"):
        with memory.checkpointed_layers(ad):
            assert all(l.training and l.gradient_checkpointing for l in ad.layers)
            assert not any(m.training for l in ad.layers for m in l.children())  # no dropout below
            raise RuntimeError("inside")
    assert _flags(ad) == before


def test_checkpointed_rows_take_a_fraction_of_the_memory():
    shape = memory.Shape(32, 4096, 32)
    full = memory.row_bytes(shape, 2264, gradient=True)
    ckpt = memory.row_bytes(shape, 2264, gradient=True, checkpointed=True)
    none = memory.row_bytes(shape, 2264, gradient=False)
    assert none < ckpt < full / 5
    assert memory.checkpoints("04_sparse_heads", "cuda") and not memory.checkpoints("04_sparse_heads", "cpu")
    assert not memory.checkpoints("01_shallow_routing", "cuda")  # its saliency reads every layer's attention map
