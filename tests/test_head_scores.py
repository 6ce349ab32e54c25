from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mfutils.findings import head_scores
from mfutils.data import synthetic
from mfutils.engine.encoding import encode
from mfutils.findings.head_scores import (ablation_per_sample, ablation_scores, agreement, agreement_above_noise,
                                 arbitration_heads, arbitration_ranking, attribution_scores, direct_scores, fast_passes,
                                 fast_scores, ig_scores, model_metric, score_all, score_directions, specificity,
                                 sparsity_curve, top_heads)
from mfutils.engine.interventions import active_hook_count
from mfutils.engine.metrics import answer_tokens


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
    assert s["passes_per_sample"]["attribution"] == 3  # a backward pass counts as two forwards
    assert s["passes_per_sample"]["fast"] == fast_passes(ad.n_layers * ad.n_heads, 0.05)
    # the shortlist rerun from each head's own layer: between 1/L and all of a pass per head
    k = fast_passes(ad.n_layers * ad.n_heads, 0.05) - 7
    assert 7 + k / ad.n_layers <= s["passes_per_sample"]["fast, incremental"] <= 7 + k
    # the fast scorer's shortlist is ablated exactly: where it ablated, it equals exhaustive ablation
    exact = s["ablation"]
    fast = s["fast"]
    same = np.isclose(fast, exact, atol=1e-5)
    assert same.sum() >= 2


def test_top_heads_agreement_and_sparsity():
    s = np.arange(12, dtype=float).reshape(3, 4)
    assert top_heads(s, 0.2) == [(2, 3), (2, 2), (2, 1)]
    assert agreement(s, s)["spearman"] == pytest.approx(1.0) and agreement(s, -s)["top_overlap"] == 0
    c = sparsity_curve(s)
    assert c["share_of_effect"].iloc[-1] == pytest.approx(1.0) and c["share_of_effect"].is_monotonic_increasing


class _QuadraticToy:
    """One head per layer; the metric is the sum over layers of (head output . r)^2, so heads do
    not interact but each is non-linear: a gradient at the clean point (plain attribution)
    gives twice the ablation effect, integrated gradients give it exactly."""

    n_layers, n_heads, head_dim = 3, 1, 2

    def __init__(self):
        torch.manual_seed(1)
        self.projs = [nn.Linear(2, 4, bias=False) for _ in range(3)]
        self.acts = [torch.randn(5, 7, 2) for _ in range(3)]
        self.readout = torch.randn(4)

    def o_proj(self, layer):
        return self.projs[layer]

    def metric(self):
        grad = torch.is_grad_enabled()
        return sum(((p(a.clone().requires_grad_(grad)) @ self.readout).sum(1)) ** 2 for p, a in zip(self.projs, self.acts))


def test_integrated_gradients_equal_exact_ablation_where_linearisation_fails():
    toy = _QuadraticToy()
    exact = ablation_scores(toy, toy.metric)
    assert torch.allclose(attribution_scores(toy, toy.metric), 2 * exact, rtol=1e-4)  # linearisation is off by 2x
    for steps in (1, 2, 4):
        assert torch.allclose(ig_scores(toy, toy.metric, steps), exact, rtol=1e-4, atol=1e-5)
    assert active_hook_count() == 0


def test_fast_scorer_replaces_its_shortlist_by_exact_ablation():
    toy = _QuadraticToy()
    scores, per_sample, shortlist = fast_scores(toy, toy.metric, fraction=0.34)  # k = 2 -> shortlist of 3
    assert len(shortlist) == 3
    exact = ablation_per_sample(toy, toy.metric)
    for lh in shortlist:
        assert float(scores[lh]) == pytest.approx(float(exact[:, lh[0], lh[1]].mean()), rel=1e-5)
        assert torch.allclose(per_sample[:, lh[0], lh[1]], exact[:, lh[0], lh[1]])


def _dir(follow, control, se=0.01):
    f, c = np.asarray(follow, float), np.asarray(control, float)
    return {"follow": {"ablation": f, "ablation_se": np.full_like(f, se)},
            "control": {"ablation": c, "ablation_se": np.full_like(c, se)}}


def test_specificity_rule_keeps_heads_that_hurt_following_more_than_their_control():
    # head (0,0): hurts following and its control alike (needed by everything): not arbitration
    # head (0,1): hurts following, not the control: arbitration
    # head (1,0): difference within noise: not arbitration; head (1,1): helps following: not
    d = _dir([[1.0, 1.0], [0.5, -0.5]], [[0.95, 0.1], [0.48, -0.9]], se=0.02)
    diff, flags = specificity(d["follow"], d["control"])
    assert diff[0, 0] == pytest.approx(0.05)  # positive, but within twice the combined noise (0.057)
    assert flags.tolist() == [[False, True], [False, False]]
    d = _dir([[1.0, 1.0], [0.5, -0.5]], [[1.0, 0.1], [0.48, -0.9]], se=0.02)
    _, flags = specificity(d["follow"], d["control"])
    assert flags.tolist() == [[False, True], [False, False]]


def test_heads_are_scored_per_direction_and_not_cancelled():
    # head (0,0) drives image following (+2) and works against text following (-2): averaging the
    # directions would score it 0; the per-direction ranking keeps it first
    by_dir = {"image": _dir([[2.0, 0.1]], [[0.0, 0.0]]), "text": _dir([[-2.0, 0.3]], [[0.0, 0.0]])}
    assert ((by_dir["image"]["follow"]["ablation"] + by_dir["text"]["follow"]["ablation"]) / 2)[0, 0] == 0
    ranking = arbitration_ranking(by_dir, "ablation")
    assert np.unravel_index(np.argmax(ranking), ranking.shape) == (0, 0)
    assert arbitration_heads(by_dir, "ablation", 0.5) == [(0, 0)]


def test_score_directions_on_the_tiny_model(tiny_bundle):
    items = synthetic.paper_conflicts(2, seed=4)
    by_dir, completed = score_directions(tiny_bundle, items, 8, exhaustive=True, fraction=0.25)
    assert completed == 0  # exhaustive: every head is measured already
    ad = tiny_bundle.adapter
    assert set(by_dir) == {"image", "text"}
    for d in by_dir.values():
        assert d["follow"]["ablation"].shape == d["control"]["ablation"].shape == (ad.n_layers, ad.n_heads)
        assert np.isfinite(d["control"]["ablation"]).all()
    assert not np.allclose(by_dir["image"]["follow"]["ablation"], by_dir["text"]["follow"]["ablation"])
    assert active_hook_count() == 0


def test_agreement_is_measured_over_heads_above_noise():
    exact = np.array([[5.0, 4.0, 3.0, 0.01], [0.02, -0.01, 2.0, 1.0]])
    se = np.full_like(exact, 0.1)
    fast = exact + np.array([[0, 0, 0, 3.0], [-3.0, 2.0, 0, 0]])  # wrong only on noise-level heads
    a = agreement_above_noise(fast, exact, se, 0.25)
    assert a["heads above noise"] == 5 and a["spearman"] == pytest.approx(1.0)


def test_incremental_head_ablation_equals_full_passes(tiny_bundle):
    from mfutils.engine import incremental
    from mfutils.findings.head_scores import ablation_tiled, incremental_metric

    items = synthetic.paper_conflicts(3, seed=6)
    batch = encode(tiny_bundle, items)
    answers = [answer_tokens(tiny_bundle.tokenizer, it) for it in items]
    full = ablation_per_sample(tiny_bundle.adapter, model_metric(tiny_bundle, batch, answers))
    run = incremental.clean_run(tiny_bundle, batch)
    fast = ablation_per_sample(tiny_bundle.adapter, model_metric(tiny_bundle, batch, answers),
                               metric_from=incremental_metric(tiny_bundle, run, answers))
    assert torch.allclose(full, fast, atol=1e-4) and full.abs().max() > 1e-3
    # several heads per pass (the batch tiled, each copy losing another head), chunks uneven
    for k in (1, 3, tiny_bundle.adapter.n_heads):
        assert torch.allclose(ablation_tiled(tiny_bundle, run, answers, k), full, atol=1e-4), k
    assert active_hook_count() == 0


def test_per_row_head_zeroing_refuses_a_mismatched_batch_and_removes_its_hook(tiny_bundle):
    from mfutils.engine.interventions import zero_head_per_row

    items = synthetic.paper_conflicts(3, seed=6)
    batch = encode(tiny_bundle, items)
    with pytest.raises(IndexError):
        with zero_head_per_row(tiny_bundle.adapter, 0, torch.tensor([tiny_bundle.adapter.n_heads])):
            pass
    with pytest.raises(ValueError, match="1 rows for a batch of"), torch.no_grad():
        with zero_head_per_row(tiny_bundle.adapter, 0, torch.tensor([0])):
            tiny_bundle.model(**batch.inputs)
    assert active_hook_count() == 0


def test_passes_table_marks_scorers_not_run():
    """Without exhaustive ablation its cost is 0 in the results; the page must not show it as a
    scorer that costs nothing, so it comes out as None (a dash) while the scorers run keep theirs."""
    from mfutils.book.tables import render

    t = head_scores.passes_table({"ablation": 0, "fast": 35, "fast, incremental": 24.17, "direct": 1})
    assert list(t["scorer"]) == ["ablation", "fast", "fast, incremental", "direct"]
    assert t["passes per sample"].isna().tolist() == [True, False, False, False]
    assert t["passes per sample"].iloc[2] == 24.17
    assert "—" in render(t)


def test_a_head_only_estimated_is_never_an_arbitration_head():
    # head (0,1): a large estimate of specificity, but never ablated exactly (no standard error)
    d = _dir([[1.0, 3.0], [0.5, 0.0]], [[0.0, 0.0], [0.0, 0.0]], se=0.02)
    for part in ("follow", "control"):
        d[part]["fast"] = d[part]["ablation"].copy()
        d[part]["ablation"][0, 1] = np.nan
        d[part]["ablation_se"][0, 1] = np.nan
    _, flags = specificity(d["follow"], d["control"], "fast")
    assert flags.tolist() == [[True, False], [True, False]]
    assert (0, 1) not in arbitration_heads({"image": d}, "fast", 0.5)


def test_every_head_a_verdict_reads_ends_up_measured(tiny_bundle):
    from mfutils.findings.head_scores import candidates, measured

    items = synthetic.paper_conflicts(3, seed=5)
    by_dir, completed = score_directions(tiny_bundle, items, 8, exhaustive=False, fraction=0.25)
    assert completed >= 0
    for t, heads in candidates(by_dir, "fast", 0.25).items():
        for lh in heads:
            assert measured(by_dir[t]["follow"])[lh] and measured(by_dir[t]["control"])[lh]
    # the chosen set is made of measured heads only
    for lh in arbitration_heads(by_dir, "fast", 0.25):
        assert any(measured(d["follow"])[lh] and measured(d["control"])[lh] for d in by_dir.values())
    # a measured value is the exact ablation, the same as an exhaustive run's
    full, _ = score_directions(tiny_bundle, items, 8, exhaustive=True, fraction=0.25)
    for t in by_dir:
        m = measured(by_dir[t]["follow"])
        np.testing.assert_allclose(by_dir[t]["follow"]["ablation"][m], full[t]["follow"]["ablation"][m], rtol=1e-4, atol=1e-5)
    assert active_hook_count() == 0


def test_a_selection_split_reads_only_its_own_samples(tiny_bundle):
    from mfutils.findings import rules
    from mfutils.findings.head_scores import measured, selection_sets, split_selection

    items = synthetic.paper_conflicts(9, seed=6)
    sets = selection_sets(tiny_bundle, items)
    full, _ = score_directions(tiny_bundle, items, 16, exhaustive=True, fraction=0.25)
    splits = split_selection(tiny_bundle, items, full, "ablation", 0.25, 16)
    assert [s["split"] for s in splits] == list(range(1, rules.STABILITY_SPLITS + 1))
    for j, s in enumerate(splits):
        idx = rules.selection_splits(len(sets["image"]["follow"]))[j]
        part = [sets[t]["follow"][i] for t in ("image", "text") for i in idx]
        assert s["samples"] == {"image": len(idx), "text": len(idx)}
        # the split's choice is the whole selection run on its samples alone
        alone, _ = score_directions(tiny_bundle, part, 16, exhaustive=True, fraction=0.25)
        assert s["heads"] == arbitration_heads(alone, "ablation", 0.25)
    # the fast path: every head it chooses was measured exactly on the split
    fast, _ = score_directions(tiny_bundle, items, 16, exhaustive=False, fraction=0.25)
    before = {t: measured(fast[t]["follow"]).copy() for t in fast}
    fast_splits = split_selection(tiny_bundle, items, fast, "fast", 0.25, 16)
    assert len(fast_splits) == rules.STABILITY_SPLITS
    assert all(set(s["heads"]) <= {(l, h) for l in range(tiny_bundle.adapter.n_layers)
                                    for h in range(tiny_bundle.adapter.n_heads)} for s in fast_splits)
    for t in fast:  # the pre-registered scores are left as they were
        assert (measured(fast[t]["follow"]) == before[t]).all()
    # too few conflicts to split: no split, not a crash
    assert split_selection(tiny_bundle, synthetic.paper_conflicts(4, seed=6), fast, "fast", 0.25, 16) == []
    assert active_hook_count() == 0
