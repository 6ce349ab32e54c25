"""Each real family's adapter on a tiny random-weight model built from its config: forward
pass, token spans, and every intervention (knockout, head scaling, capture)."""

from __future__ import annotations

import pytest
import torch

from mfutils.data import synthetic
from mfutils.models.adapters import adapter_for
from mfutils.engine.encoding import encode
from mfutils.engine.interventions import active_hook_count, capture, knockout, knockout_mask, scale_heads
from mfutils.models.loading import ModelBundle
from mfutils.engine.metrics import last_logits

from .tiny_families import ALL_FAMILIES, build


@pytest.fixture(scope="module", params=sorted(ALL_FAMILIES))
def family_bundle(request):
    model, proc = build(request.param)
    return request.param, ModelBundle(model, proc, adapter_for(model), request.param, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def items():
    conflicts = synthetic.paper_conflicts(2, seed=0)
    controls = synthetic.make_split("eval", 6, seed=0, kinds={"image_only": 0.5, "text_only": 0.5})
    return conflicts + controls


def test_adapter_family_and_structure(family_bundle):
    name, b = family_bundle
    ad = b.adapter
    assert ad.family == name
    assert ad.n_layers == 2 and ad.n_heads == 4
    assert ad.n_heads * ad.head_dim == ad.o_proj(0).in_features
    assert ad.unembed.out_features == b.model.config.get_text_config().vocab_size
    if name.startswith(("qwen", "internvl")):
        assert ad.n_kv_heads == 2  # grouped-query attention seen through the adapter


def test_forward_and_spans(family_bundle, items):
    name, b = family_bundle
    batch = encode(b, items)
    with torch.no_grad():
        out = b.model(**batch.inputs)
    assert torch.isfinite(out.logits).all()
    tok = b.tokenizer
    for it, sp in zip(items, batch.spans):
        ids = batch.inputs["input_ids"][batch.spans.index(sp)]
        words = lambda g: tok.convert_ids_to_tokens([int(ids[p]) for p in sp[g]])  # noqa: E731
        assert bool(sp["vision"]) == (it.image_ref is not None)
        assert all(ids[p] == b.adapter.image_token_id for p in sp["vision"])
        assert words("question")[:2] == ["what", it.question.split()[1].lower()]
        assert words("constraint")[:2] == ["answer", "the"]
        if it.instruction:
            assert words("instruction")[0] == it.instruction.split()[0].lower()
        if it.context:
            assert words("text_context")[:2] == ["text", "context"]
        assert sp["last"] == [len(ids[: int(batch.lengths[batch.spans.index(sp)])]) - 1]
        # the chat template's own tokens: in no other group, one before the user's text, one after it
        others = {p for g in ("vision", "text_context", "instruction", "neutral", "question", "constraint", "last")
                  for p in sp[g]}
        assert sp["template"] and not set(sp["template"]) & others
        assert min(sp["template"]) < min(sp["question"]) and max(sp["template"]) > max(sp["constraint"])


def test_interventions_work_and_clean_up(family_bundle, items):
    name, b = family_bundle
    ad = b.adapter
    batch = encode(b, items[:4])
    T = batch.inputs["input_ids"].shape[1]
    with torch.no_grad():
        clean = last_logits(b.model(**batch.inputs), batch.lengths)
        with knockout(ad, range(ad.n_layers), torch.zeros(len(batch), 1, T, T, dtype=torch.bool)):
            same = last_logits(b.model(**batch.inputs), batch.lengths)
        with knockout(ad, range(ad.n_layers), knockout_mask(batch.spans, "vision", ["text", "last"], T)):
            cut = last_logits(b.model(**batch.inputs), batch.lengths)
        with scale_heads(ad, [(0, 1), (1, 3)], 1.0):
            ident = last_logits(b.model(**batch.inputs), batch.lengths)
        with scale_heads(ad, [(0, 1), (1, 3)], 0.0):
            ablated = last_logits(b.model(**batch.inputs), batch.lengths)
        with capture(ad, batch.last[:, None]) as store:
            b.model(**batch.inputs)
    assert torch.allclose(clean, same, atol=1e-6)
    assert not torch.allclose(clean, cut, atol=1e-4)
    assert torch.allclose(clean, ident, atol=1e-6)
    assert not torch.allclose(clean, ablated, atol=1e-4)
    assert torch.allclose(ad.lens(store["resid_final"][:, 0]), clean, atol=1e-4)
    assert active_hook_count() == 0


def test_captured_sublayer_outputs_add_up_to_the_residual(family_bundle, items):
    """What capture calls each sublayer's output is what it adds to the residual stream (Gemma
    normalises attention and MLP outputs before adding them: the adapter's ``attn_out`` and
    ``mlp_out``), so the embedding plus every layer's two outputs is the final residual, and
    the residual entering each layer is the one before plus that layer's outputs."""
    _, b = family_bundle
    ad = b.adapter
    batch = encode(b, items[:4])
    every = torch.arange(batch.inputs["input_ids"].shape[1])[None].expand(len(batch), -1)
    with torch.no_grad(), capture(ad, every) as store:
        b.model(**batch.inputs)
    total = store["resid_pre"][0]
    for layer in range(ad.n_layers):
        total = total + store["attn"][layer] + store["mlp"][layer]
        following = store["resid_pre"][layer + 1] if layer + 1 < ad.n_layers else store["resid_final"]
        assert torch.allclose(total, following, atol=1e-5)
