from __future__ import annotations

import numpy as np

from mfutils.data import synthetic
from mfutils.data.prompts import PAPER_INSTRUCTIONS


def test_same_seed_same_items_and_pixels():
    a = synthetic.make_split("eval", 30, seed=3)
    b = synthetic.make_split("eval", 30, seed=3)
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    ref = next(x.image_ref for x in a if x.image_ref)
    assert np.array_equal(np.asarray(synthetic.image_from_ref(ref)), np.asarray(synthetic.image_from_ref(ref)))


def test_kinds_are_realised_exactly():
    items = synthetic.make_split("train", 100, seed=0)
    kinds = [x.kind for x in items]
    assert kinds.count("conflict") == 50 and kinds.count("text_only") == 15


def test_heldout_combinations_and_paraphrases_are_never_trained_on():
    train = synthetic.make_split("train", 2000, seed=0)
    for it in train:
        colour, shape = (it.image_ref.split(":")[1:3] if it.image_ref else (None, None))
        if colour:
            assert not synthetic.is_heldout_combo(it.meta["noun"], colour, shape)
        if it.instruction:
            assert it.instruction not in synthetic.PARAPHRASES[it.target]["heldout"]
    held = synthetic.make_split("eval_heldout_paraphrase", 200, seed=0, kinds={"conflict": 1.0})
    assert all(it.instruction in synthetic.PARAPHRASES[it.target]["heldout"] for it in held)
    assert all(synthetic.is_heldout_combo(it.meta["noun"], *it.image_ref.split(":")[1:3]) for it in held)


def test_conflicts_disagree_and_consistent_agree():
    for it in synthetic.make_split("eval", 200, seed=1):
        if it.kind == "conflict":
            assert it.answer_image != it.answer_text
        if it.kind == "consistent":
            assert it.answer_image == it.answer_text


def test_paper_conflicts_use_the_papers_sentences_in_both_directions():
    items = synthetic.paper_conflicts(5, seed=0)
    assert len(items) == 10
    assert {it.instruction for it in items} == set(PAPER_INSTRUCTIONS.values())
    assert items[0].answer_image == items[5].answer_image


def test_every_generated_word_is_in_the_vocabulary(tiny_bundle):
    tok = tiny_bundle.tokenizer
    for it in synthetic.make_split("eval", 100, seed=2) + synthetic.make_split("eval_heldout_paraphrase", 50, seed=2):
        for text in (it.question, it.context or "", it.instruction or ""):
            assert tok.unk_token_id not in tok(text, add_special_tokens=False)["input_ids"], text


def test_square_and_circle_differ_in_the_corner_patches():
    """The organism sees 8-px patches: the square must reach the corner ones, the circle (almost) not."""
    size, patch = synthetic.IMAGE_SIZE, 8
    corners = np.zeros((size, size), bool)
    for y in (slice(0, patch), slice(size - patch, size)):
        for x in (slice(0, patch), slice(size - patch, size)):
            corners[y, x] = True
    for r in (10, 11, 12):
        square = synthetic._shape_mask("square", size // 2, size // 2, r)
        circle = synthetic._shape_mask("circle", size // 2, size // 2, r)
        assert (square & corners).sum() >= 16 and (circle & corners).sum() <= 1

