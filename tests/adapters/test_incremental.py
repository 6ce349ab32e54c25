"""The incremental engine equals a full recomputation, for every edge, layer window and family
(tiny random-weight models, the rotary variants of Qwen2-VL / Qwen2.5-VL included), and for
head ablation; and it leaves the model as it found it."""

from __future__ import annotations

import pytest
import torch

from mfutils.engine import incremental
from mfutils.findings import routing
from mfutils.data import synthetic
from mfutils.engine.encoding import encode
from mfutils.engine.interventions import active_hook_count, knockout, knockout_mask, scale_heads
from mfutils.engine.metrics import last_logits


#: float32 logits of a full pass and of an incremental one may differ in summation order only
ATOL = 1e-4

EDGES = list(dict.fromkeys(routing.FIGURE2_EDGES + routing.FIGURE3_EDGES + routing.CONTROL_EDGES + routing.LAST_EDGES))


@pytest.fixture(scope="module")
def batch(bundle):
    items = synthetic.paper_conflicts(3, seed=7)  # both directions: different lengths, right padding
    return encode(bundle, items)


def test_knockouts_equal_full_recomputation(bundle, batch):
    ad = bundle.adapter
    T = batch.inputs["input_ids"].shape[1]
    with torch.no_grad():
        clean = incremental.clean_run(bundle, batch)
        full_clean = last_logits(bundle.model(**batch.inputs), batch.lengths)
    assert torch.allclose(clean.logits, full_clean, atol=ATOL)
    moved = 0.0
    for source, target in EDGES:
        block = knockout_mask(batch.spans, source, target, T)
        start = int(incremental.own_starts(batch.spans, batch.lengths, target).min())  # the batch's shared start
        for window in (1, 3):
            for layer in range(ad.n_layers):
                layers = routing.window_layers(layer, window, ad.n_layers)
                with torch.no_grad(), knockout(ad, layers, block):
                    full = last_logits(bundle.model(**batch.inputs), batch.lengths)
                with knockout(ad, layers, block[:, :, start:, :]):
                    fast = incremental.suffix_logits(bundle, clean, min(layers), start)
                assert torch.allclose(fast, full, atol=ATOL), (source, target, window, layer)
                moved = max(moved, float((full - full_clean).abs().max()))
    assert moved > 1e-3  # the knockouts did change the answer logits
    assert active_hook_count() == 0


def test_head_ablation_from_its_layer_equals_full_recomputation(bundle, batch):
    ad = bundle.adapter
    clean = incremental.clean_run(bundle, batch)
    for layer in range(ad.n_layers):
        with torch.no_grad(), scale_heads(ad, [(layer, 1)], 0.0):
            full = last_logits(bundle.model(**batch.inputs), batch.lengths)
            fast = incremental.suffix_logits(bundle, clean, layer, 0)
        assert torch.allclose(fast, full, atol=ATOL)
    assert active_hook_count() == 0


def test_tiled_head_ablation_equals_one_head_per_full_pass(bundle, batch):
    """Several heads per pass: the batch tiled, each copy losing another head of the layer,
    recomputed from that layer on (Qwen2-VL's 3-D rotary ids tiled along their batch axis)."""
    from mfutils.findings.head_scores import ablation_tiled
    from mfutils.engine.metrics import answer_tokens, readout

    ad = bundle.adapter
    items = synthetic.paper_conflicts(3, seed=7)
    answers = [answer_tokens(bundle.tokenizer, it) for it in items]
    clean = incremental.clean_run(bundle, batch)
    tiled = ablation_tiled(bundle, clean, answers, heads_per_pass=3)
    base = readout(clean.logits, answers).logit_diff
    for layer in range(ad.n_layers):
        for head in range(ad.n_heads):
            with torch.no_grad(), scale_heads(ad, [(layer, head)], 0.0):
                full = readout(last_logits(bundle.model(**batch.inputs), batch.lengths), answers).logit_diff
            assert torch.allclose(tiled[:, layer, head], base - full, atol=ATOL), (layer, head)
    assert active_hook_count() == 0


def test_the_model_is_left_as_it_was(bundle, batch):
    ad = bundle.adapter
    layers = list(ad.language_model.layers)
    clean = incremental.clean_run(bundle, batch)
    with pytest.raises(ValueError):
        incremental.suffix_logits(bundle, clean, 1, 10_000)  # a start past the last position
    assert list(ad.language_model.layers) == layers
    with torch.no_grad():
        assert torch.allclose(last_logits(bundle.model(**batch.inputs), batch.lengths), clean.logits, atol=ATOL)


def test_layers_and_hooks_are_restored_when_a_run_fails(bundle, batch):
    ad = bundle.adapter
    layers = list(ad.language_model.layers)
    types = getattr(ad.language_model.config, "layer_types", None)
    types = list(types) if types is not None else None
    clean = incremental.clean_run(bundle, batch)

    def boom(module, args, kwargs):
        raise RuntimeError("boom")

    handle = ad.layers[-1].register_forward_pre_hook(boom, with_kwargs=True)
    try:
        with pytest.raises(RuntimeError, match="boom"), scale_heads(ad, [(0, 0)], 0.0):
            incremental.suffix_logits(bundle, clean, 1, 0)  # from layer 1: the layer list (and its types) is cut
    finally:
        handle.remove()
    assert list(ad.language_model.layers) == layers and active_hook_count() == 0
    assert getattr(ad.language_model.config, "layer_types", None) == types


def test_knockouts_from_each_samples_own_start_equal_full_recomputation(bundle, batch):
    """Each sample recomputed from its own first target position to its own last token (the
    suffixes packed left, the cache's unused prefix slots masked) equals a full pass."""
    ad = bundle.adapter
    T = batch.inputs["input_ids"].shape[1]
    clean = incremental.clean_run(bundle, batch)
    assert len(set(batch.lengths.tolist())) > 1  # the samples differ in length
    for source, target in EDGES:
        block = knockout_mask(batch.spans, source, target, T)
        starts = incremental.own_starts(batch.spans, batch.lengths, target)
        for layer in range(ad.n_layers):
            layers = routing.window_layers(layer, 3, ad.n_layers)
            with torch.no_grad(), knockout(ad, layers, block):
                full = last_logits(bundle.model(**batch.inputs), batch.lengths)
            with knockout(ad, layers, incremental.own_block(block, clean, starts)):
                fast = incremental.own_suffix_logits(bundle, clean, min(layers), starts)
            assert torch.allclose(fast, full, atol=ATOL), (source, target, layer)
    assert active_hook_count() == 0
