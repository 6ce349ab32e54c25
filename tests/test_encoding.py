from __future__ import annotations

from mfutils.engine.encoding import encode
from mfutils.data.prompts import LAYOUTS


def _tokens(bundle, batch, b, group):
    ids = batch.inputs["input_ids"][b]
    return bundle.tokenizer.convert_ids_to_tokens([int(ids[p]) for p in batch.spans[b][group]])


def test_spans_cover_the_right_words(tiny_bundle, eval_items):
    it = next(x for x in eval_items if x.kind == "conflict")
    batch = encode(tiny_bundle, [it])
    assert _tokens(tiny_bundle, batch, 0, "question")[:3] == ["what", it.question.split()[1].lower(), "is"]
    assert _tokens(tiny_bundle, batch, 0, "constraint")[-3:] == ["answer", "is", "."] or \
        _tokens(tiny_bundle, batch, 0, "constraint")[-2:] == ["answer", "is"]
    assert _tokens(tiny_bundle, batch, 0, "text_context")[:3] == ["text", "context", ":"]
    assert set(_tokens(tiny_bundle, batch, 0, "vision")) == {"<image>"}
    assert len(batch.spans[0]["vision"]) == 16
    assert batch.spans[0]["last"] == [int(batch.lengths[0]) - 1]
    assert _tokens(tiny_bundle, batch, 0, "last") == [":"]


def test_groups_are_disjoint_and_text_excludes_vision_and_last(tiny_bundle, eval_items):
    batch = encode(tiny_bundle, eval_items[:8])
    for sp in batch.spans:
        named = [sp[g] for g in ("vision", "text_context", "instruction", "question", "constraint", "last")]
        flat = [p for g in named for p in g]
        assert len(flat) == len(set(flat))
        assert not set(sp["text"]) & (set(sp["vision"]) | set(sp["last"]))


def test_right_padding_and_lengths(tiny_bundle, eval_items):
    batch = encode(tiny_bundle, eval_items[:8])
    am = batch.inputs["attention_mask"]
    assert am.sum(1).tolist() == batch.lengths.tolist()
    for b, n in enumerate(batch.lengths.tolist()):
        assert am[b, :n].all() and not am[b, n:].any()


def test_layouts_move_the_instruction(tiny_bundle, eval_items):
    it = next(x for x in eval_items if x.kind == "conflict")
    for layout in LAYOUTS:
        sp = encode(tiny_bundle, [it], layout).spans[0]
        if layout == "instruction_after_constraint":
            assert min(sp["instruction"]) > max(sp["constraint"])
        else:
            assert max(sp["instruction"]) < min(sp["question"])
        assert bool(sp["neutral"]) == (layout == "neutral_after_instruction")
