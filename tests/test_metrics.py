from __future__ import annotations

import numpy as np
import pytest
import torch

from mfutils.engine.metrics import AnswerTokens, answer_tokens, bootstrap_ci, following_ratio, readout, relative_drop
from mfutils.data.schema import Item


def _conflict(**kw):
    base = dict(uid="x", kind="conflict", question="What color is the ball?", image_ref="synthetic:red:circle:1",
                context="The ball is a blue circle.", target="image", instruction="Trust the image over the text.",
                answer_image="red", answer_text="blue")
    base.update(kw)
    return Item(**base)


def test_readout_binary_and_decision():
    logits = torch.full((2, 6), -10.0)
    logits[0, 1], logits[0, 2] = 3.0, 1.0   # follows
    logits[1, 2], logits[1, 1] = 3.0, 1.0   # competitor wins
    ans = [AnswerTokens((1,), (2,)), AnswerTokens((1,), (2,))]
    r = readout(logits, ans)
    assert r.decision.tolist() == [1, -1]
    assert r.binary[0] == pytest.approx(1 / (1 + np.exp(-2)), rel=1e-5)
    assert r.logit_diff.tolist() == pytest.approx([2.0, -2.0], abs=1e-5)


def test_readout_sums_probability_over_synonyms():
    logits = torch.zeros(1, 5)
    r = readout(logits, [AnswerTokens((0, 1), (2,))])
    assert float(r.p_follow[0]) == pytest.approx(2 / 5)
    assert float(r.binary[0]) == pytest.approx(2 / 3)


def test_answer_tokens_disjoint_and_ambiguous(tiny_bundle):
    tok = tiny_bundle.tokenizer
    a = answer_tokens(tok, _conflict())
    assert set(a.following).isdisjoint(a.competitor) and a.following and a.competitor
    assert tok.convert_ids_to_tokens(list(a.following)) == ["red"]


def test_conflict_with_same_answers_is_rejected():
    with pytest.raises(ValueError, match="different image and text answers"):
        _conflict(answer_text="Red")


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = np.r_[np.ones(70), np.zeros(30)]
    est, lo, hi = bootstrap_ci(x, seed=1)
    assert (est, lo, hi) == bootstrap_ci(x, seed=1)
    assert est == pytest.approx(0.7) and lo < est < hi


def test_following_ratio_and_relative_drop():
    assert following_ratio([1, 1, -1, 0]) == 0.5
    assert relative_drop(0.8, 0.2) == pytest.approx(0.75)
