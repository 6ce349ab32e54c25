"""Interventions: no-ops change nothing, edits do what they say, hooks never leak."""

from __future__ import annotations

import pytest
import torch

from mfutils.engine.encoding import encode
from mfutils.engine.interventions import (
    active_hook_count,
    capture,
    knockout,
    knockout_mask,
    mean_ablate_mlps,
    scale_heads,
)
from mfutils.engine.metrics import last_logits


def _hook_count(model) -> int:
    # transformers installs hooks of its own; count all, and compare before/after
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _logits(bundle, batch):
    with torch.no_grad():
        return bundle.model(**batch.inputs).logits


@pytest.fixture(scope="module")
def batch(tiny_bundle, eval_items):
    items = [it for it in eval_items if it.kind in ("conflict", "consistent")][:6]
    return encode(tiny_bundle, items)


def test_empty_knockout_changes_no_logit(tiny_bundle, batch):
    clean = _logits(tiny_bundle, batch)
    T = batch.inputs["input_ids"].shape[1]
    empty = torch.zeros(len(batch), 1, T, T, dtype=torch.bool)
    with knockout(tiny_bundle.adapter, range(tiny_bundle.adapter.n_layers), empty):
        edited = _logits(tiny_bundle, batch)
    assert torch.equal(clean, edited)


def test_knockout_of_unrelated_groups_is_a_noop_but_real_one_is_not(tiny_bundle, batch):
    clean = _logits(tiny_bundle, batch)
    T = batch.inputs["input_ids"].shape[1]
    cut = knockout_mask(batch.spans, "vision", "last", T)
    with knockout(tiny_bundle.adapter, [0, 1], cut):
        edited = _logits(tiny_bundle, batch)
    assert not torch.allclose(clean, edited)
    # positions before the last are untouched by cutting edges into the last position only
    for b, n in enumerate(batch.lengths.tolist()):
        assert torch.allclose(clean[b, : n - 1], edited[b, : n - 1], atol=1e-6)


def test_cutting_every_path_from_image_to_last_makes_answer_image_independent(tiny_bundle, eval_items):
    """With vision -> all later positions cut in every layer, two different images give the same last logits."""
    from mfutils.data.schema import Item

    base = next(it for it in eval_items if it.kind == "conflict")
    other = Item.from_dict(dict(base.to_dict(), uid="other", image_ref="synthetic:green:cross:123"))
    b = encode(tiny_bundle, [base, other])
    T = b.inputs["input_ids"].shape[1]
    later = [{**sp, "after": [p for p in range(T) if p not in set(sp["vision"])]} for sp in b.spans]
    cut = knockout_mask(later, "vision", "after", T)
    with torch.no_grad():
        free = last_logits(tiny_bundle.model(**b.inputs), b.lengths)
        with knockout(tiny_bundle.adapter, range(tiny_bundle.adapter.n_layers), cut):
            blocked = last_logits(tiny_bundle.model(**b.inputs), b.lengths)
    assert not torch.allclose(free[0], free[1], atol=1e-4)
    assert torch.allclose(blocked[0], blocked[1], atol=1e-5)


def test_scale_by_one_is_identity_and_zero_changes_output(tiny_bundle, batch):
    clean = _logits(tiny_bundle, batch)
    heads = [(0, 0), (1, 2)]
    with scale_heads(tiny_bundle.adapter, heads, 1.0):
        same = _logits(tiny_bundle, batch)
    assert torch.equal(clean, same)
    with scale_heads(tiny_bundle.adapter, heads, 0.0):
        changed = _logits(tiny_bundle, batch)
    assert not torch.allclose(clean, changed)


def test_zeroing_a_head_equals_zeroing_its_o_proj_columns(tiny_bundle, batch):
    ad = tiny_bundle.adapter
    with scale_heads(ad, [(1, 1)], 0.0):
        hooked = _logits(tiny_bundle, batch)
    w = ad.o_proj(1).weight
    saved = w.data.clone()
    try:
        w.data[:, ad.head_dim : 2 * ad.head_dim] = 0
        direct = _logits(tiny_bundle, batch)
    finally:
        w.data.copy_(saved)
    assert torch.allclose(hooked, direct, atol=1e-6)


@pytest.mark.parametrize("make", ["knockout", "scale", "capture", "mlp"])
def test_hooks_are_removed_after_an_exception(tiny_bundle, batch, make):
    ad = tiny_bundle.adapter
    T = batch.inputs["input_ids"].shape[1]
    clean = _logits(tiny_bundle, batch)
    before = _hook_count(tiny_bundle.model)
    ctx = {
        "knockout": lambda: knockout(ad, [0, 1], knockout_mask(batch.spans, "vision", "text", T)),
        "scale": lambda: scale_heads(ad, [(0, 1)], 0.0),
        "capture": lambda: capture(ad, batch.last[:, None]),
        "mlp": lambda: mean_ablate_mlps(ad, {0: torch.zeros(ad.hidden_size)}),
    }[make]
    with pytest.raises(RuntimeError, match="boom"):
        with ctx():
            assert active_hook_count() > 0
            raise RuntimeError("boom")
    assert active_hook_count() == 0
    assert _hook_count(tiny_bundle.model) == before
    assert torch.equal(clean, _logits(tiny_bundle, batch))


def test_capture_matches_model_logits(tiny_bundle, batch):
    """resid_final through the final norm and unembedding reproduces the model's last logits."""
    ad = tiny_bundle.adapter
    with torch.no_grad(), capture(ad, batch.last[:, None]) as store:
        logits = last_logits(tiny_bundle.model(**batch.inputs), batch.lengths)
    lens = ad.lens(store["resid_final"][:, 0])
    assert torch.allclose(lens, logits, atol=1e-5)
    # the residual stream is the running sum of its writes
    for layer in range(ad.n_layers - 1):
        nxt = store["resid_pre"][layer] + store["attn"][layer] + store["mlp"][layer]
        assert torch.allclose(nxt, store["resid_pre"][layer + 1], atol=1e-5)


def test_head_index_out_of_range_is_rejected(tiny_bundle):
    with pytest.raises(IndexError):
        with scale_heads(tiny_bundle.adapter, [(99, 0)], 0.0):
            pass
    assert active_hook_count() == 0
