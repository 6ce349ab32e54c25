"""The verdict rules of 2026-12-06 (issue 40), pre-registered before any chapter runs under them."""

from __future__ import annotations

import numpy as np
import pytest

from mfutils.findings import rules

VT = rules.rule("01-vt-image")  # negative, threshold 0.25
VI = rules.rule("01-vi")        # a route claim, bypass Vision -/-> Last
AMP = rules.rule("05-amplify")  # threshold 0.40


def test_a_significant_but_tiny_effect_is_not_reproduced():
    # 01-vt-image on the pretrained organism: -0.03 [-0.06, -0.01], significant, 8x below the threshold
    assert rules.effect_verdict(VT, -0.03, -0.06, -0.01) == "not reproduced"
    assert rules.effect_verdict(VT, -0.13, -0.20, -0.05) == "partly"  # at least half the threshold
    assert rules.effect_verdict(VT, -0.30, -0.40, -0.20) == "reproduced"
    assert rules.effect_verdict(VT, -0.30, -0.60, +0.01) == "not reproduced"  # interval reaches zero


def test_the_bypass_is_compared_at_any_depth_and_named():
    route = (-0.30, -0.40, -0.20)
    inside_band_only = {13: -0.01, 14: -0.02, 23: -8.5}  # Vision -> Last at layer 23 of 30
    verdict, note = rules.route_verdict(VI, route, inside_band_only, n_layers=30)
    assert verdict == "not reproduced" and "layer 23 (depth 0.78): -8.50" in note
    verdict, note = rules.route_verdict(VI, route, {13: -0.01, 23: -0.02}, n_layers=30)
    assert verdict == "reproduced"
    assert rules.route_verdict(VI, route, {23: -0.10}, n_layers=30)[0] == "partly"  # within the threshold


def test_a_two_direction_claim_needs_both_directions():
    # 05-block on the pretrained organism: image following did not drop at all
    assert rules.combine_directions({"image": "not reproduced", "text": "partly"}) == ("not reproduced",
                                                                                       "not reproduced in image")
    assert rules.combine_directions({"image": "partly", "text": "reproduced"}) == ("partly", "")
    assert rules.combine_directions({"image": "reproduced", "text": "reproduced"}) == ("reproduced", "")


def test_a_head_without_an_exact_measurement_is_never_an_arbitration_head():
    follow = np.array([[1.0, 1.0, 0.05]])
    control = np.array([[0.0, 0.0, 0.0]])
    se = np.array([[0.1, np.nan, 0.1]])  # head 1 was only estimated (integrated gradients)
    assert rules.measured_arbitration_heads(follow, se, control, np.full_like(se, 0.1)).tolist() == [[True, False,
                                                                                                      False]]


def test_the_random_band_needs_fifty_draws():
    with pytest.raises(ValueError, match="at least 50"):
        rules.random_band(np.linspace(0.5, 1.0, 5))
    lo, hi = rules.random_band(np.linspace(0.0, 1.0, 101))
    assert lo == pytest.approx(0.025) and hi == pytest.approx(0.975)


def test_blocking_must_fall_below_the_band_with_its_interval():
    randoms = np.linspace(0.80, 1.00, 60)
    block = rules.rule("05-block")
    assert rules.blocking_direction(block, 1.0, 25, 32, randoms)[0] == "not reproduced"  # 0.78 [0.61, 0.89]
    assert rules.blocking_direction(block, 1.0, 10, 32, randoms)[0] == "reproduced"
    p, lo, hi = rules.wilson(25, 32)
    assert (round(lo, 2), round(hi, 2)) == (0.61, 0.89)


def test_amplification_must_beat_removal_on_enough_failures():
    rng = np.random.default_rng(0)
    n = 40
    clean = np.zeros(n)
    removal = (rng.random(n) < 0.5).astype(float)
    amplified = removal.copy()  # alpha = 2 repairs exactly what removing the heads repairs
    verdict, note = rules.amplification_verdict(AMP, {2.0: amplified, 1.0: clean, 0.0: removal}, 0, 100)
    assert verdict == "not reproduced" and "minus α = 0" in note
    amplified = np.ones(n)
    assert rules.amplification_verdict(AMP, {2.0: amplified, 1.0: clean, 0.0: removal}, 0, 100)[0] == "reproduced"
    assert rules.amplification_verdict(AMP, {2.0: amplified, 1.0: clean, 0.0: removal}, 10, 100)[0] == "not reproduced"
    six = {a: v[:6] for a, v in {2.0: amplified, 1.0: clean, 0.0: removal}.items()}
    assert rules.amplification_verdict(AMP, six, 0, 100)[0] == "not measurable"


def test_failures_are_typed_on_a_toy():
    # told to follow the text (blue), the model said "red", which it says when told to follow the image
    assert rules.failure_type("red", "Red") == "misread instruction"
    assert rules.failure_type("green", "red") == "other"
    assert not rules.failures_measurable(29) and rules.failures_measurable(30)


def test_overlap_and_ceilings():
    assert rules.jaccard([(1, 2), (3, 4)], [(3, 4), (5, 6)]) == pytest.approx(1 / 3)
    assert rules.bound_note(1.0, 1.0) == rules.AT_CEILING and rules.bound_note(0.9, 1.0) == ""


def test_wilson_bounds_are_exact_at_zero_and_n():
    for n in (12, 32, 128, 256):
        assert rules.wilson(n, n)[2] == 1.0 and rules.wilson(0, n)[1] == 0.0
        _, lo, hi = rules.wilson(n // 3, n)
        assert lo < n // 3 / n < hi


def test_a_direction_that_cannot_be_measured_makes_the_claim_not_measurable():
    assert rules.combine_directions({"image": "reproduced", "text": "not measurable"}) == ("not measurable",
                                                                                           "not measurable in text")


def test_query_then_fetch_needs_the_instruction_read_before_the_fetch():
    # the instruction tokens decide up to layer 9, the last position carries it from 8, the fetch is at 12
    early = {l: (0.9 if l < 10 else 0.0) for l in range(20)}
    carried = {l: (0.8 if l >= 8 else 0.0) for l in range(20)}
    assert rules.query_then_fetch(early, carried, (12, -3.0), 20)[0] == "met"
    # the instruction tokens still decide after the fetch: partly
    late = {l: (0.9 if l < 15 else 0.0) for l in range(20)}
    assert rules.query_then_fetch(late, carried, (12, -3.0), 20)[0] == "partly"
    # the last position never carries it, or only after the fetch: not met
    assert rules.query_then_fetch(early, {l: 0.1 for l in range(20)}, (12, -3.0), 20)[0] == "not met"
    assert rules.query_then_fetch(early, {l: (0.8 if l >= 14 else 0.0) for l in range(20)}, (12, -3.0), 20)[0] == "not met"
    # no fetch above the effect threshold: nothing is fetched
    verdict, note = rules.query_then_fetch(early, carried, (12, -0.1), 20)
    assert verdict == "not met" and "no fetch" in note
    assert rules.combine_met({"image": "met", "text": "partly"}) == ("partly", "")
    assert rules.combine_met({"image": "met", "text": "not met"}) == ("not met", "not met in text")
