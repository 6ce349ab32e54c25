from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfutils.book import crossrefs
from mfutils.data import synthetic
from mfutils.findings import rules
from mfutils.findings.causal import random_same_layers, summarize_blocking, verdicts


def test_random_heads_come_from_the_same_layers_and_never_repeat_a_top_head():
    rng = np.random.default_rng(0)
    top = [(2, 0), (2, 3), (5, 1)]
    for _ in range(50):
        draw = random_same_layers(top, n_heads=8, rng=rng, n_layers=8)
        assert len(draw) == len(set(draw)) == 3
        assert not set(draw) & set(top)
        assert sorted(l for l, _ in draw) == [2, 2, 5]


def test_a_full_layer_moves_the_draw_to_the_nearest_layer():
    rng = np.random.default_rng(0)
    top = [(0, h) for h in range(7)]  # 7 of layer 0's 8 heads
    draw = random_same_layers(top, n_heads=8, rng=rng, n_layers=4)
    assert len(draw) == 7 and not set(draw) & set(top)
    assert sum(l == 0 for l, _ in draw) == 1 and all(l in (0, 1) for l, _ in draw)
    with pytest.raises(ValueError, match="no head left"):
        random_same_layers([(0, h) for h in range(4)], n_heads=4, rng=rng, n_layers=1)


N = 40  # conflicts per direction in the toy curves


def _curve(top_value: float, random_values: list[float], ctrl_top: float = 1.0) -> pd.DataFrame:
    def row(heads, measure, value, draw=0, fraction=0.05, k=4):
        return {"heads": heads, "fraction": fraction, "k": k, "draw": draw, "measure": measure, "value": value,
                "followed": round(value * N), "n": N}
    rows = [row("none", m, 1.0, fraction=0.0, k=0) for m in ("MF image", "MF text", "image_only", "text_only")]
    for m in ("MF image", "MF text"):
        rows.append(row("top", m, top_value))
        rows += [row("random", m, v, draw=d) for d, v in enumerate(random_values)]
    for m in ("image_only", "text_only"):
        rows.append(row("top", m, ctrl_top))
    return pd.DataFrame(rows)


def _items(repaired: dict[float, float], n_failed: int = 40, n_ok: int = 60, broken: float = 0.0) -> pd.DataFrame:
    """Per-item amplification outcomes: per direction, ``n_failed`` failures of which the first
    ``repaired[alpha]`` share turn into the instructed answer, and ``n_ok`` successes."""
    rows = []
    for t in ("image", "text"):
        for a, share in repaired.items():
            rows += [{"uid": f"{t}{i:03d}", "target": t, "alpha": a, "clean": -1,
                      "decision": 1 if i < round(share * n_failed) else -1} for i in range(n_failed)]
            rows += [{"uid": f"{t}ok{i:03d}", "target": t, "alpha": a, "clean": 1,
                      "decision": -1 if (a == 2.0 and i < round(broken * n_ok)) else 1} for i in range(n_ok)]
    return pd.DataFrame(rows)


RANDOM = [0.95, 0.975, 1.0] * 17  # 51 draws


def _verdicts(curve, items):
    return verdicts(summarize_blocking(curve), curve, items)


def test_blocking_needs_the_wilson_interval_below_a_band_of_enough_draws():
    good = _items({2.0: 0.6, 1.0: 0.0, 0.0: 0.1})
    strong = _verdicts(_curve(0.3, RANDOM), good)
    assert list(strong["verdict"]) == ["reproduced", "reproduced", "reproduced"]
    assert "drop 70%" in strong["ours"].iloc[0] and "51 draws" in strong["ours"].iloc[0]
    # the controls fell from 1.0 to 0.5
    weak = _verdicts(_curve(0.97, RANDOM, ctrl_top=0.5), good)
    assert list(weak["verdict"].iloc[:2]) == ["not reproduced", "not reproduced"]
    # five draws make no band, whatever the blocked ratio
    few = _verdicts(_curve(0.3, [0.9] * 5), good)
    assert few["verdict"].iloc[0] == "not measurable" and "5 random sets" in few["ours"].iloc[0]
    # a blocked ratio below the band but whose interval reaches into it is not enough
    close = _verdicts(_curve(0.92, RANDOM), good)  # 37 of 40: Wilson [0.80, 0.97] reaches the band (0.95)
    assert close["verdict"].iloc[0] == "not reproduced"


def test_a_claim_on_both_directions_needs_both():
    curve = _curve(0.3, RANDOM)
    curve.loc[(curve["heads"] == "top") & (curve["measure"] == "MF image"), ["value", "followed"]] = [1.0, N]
    v = _verdicts(curve, _items({2.0: 0.6, 1.0: 0.0, 0.0: 0.1}))
    assert v["verdict"].iloc[0] == "not reproduced" and "not reproduced in MF image" in v["ours"].iloc[0]


def test_controls_at_their_ceiling_say_so():
    v = _verdicts(_curve(0.3, RANDOM), _items({2.0: 0.6, 1.0: 0.0, 0.0: 0.1}))
    assert v["verdict"].iloc[1] == "reproduced" and "at ceiling" in v["ours"].iloc[1]


def test_amplification_must_beat_removal_and_read_alpha_2_only():
    # alpha = 2 repairs as much as removing the heads: no repair
    same = _verdicts(_curve(0.3, RANDOM), _items({2.0: 0.5, 1.0: 0.0, 0.0: 0.5, -1.0: 0.9, 10.0: 0.9}))
    assert same["verdict"].iloc[2] == "not reproduced" and "α = 2" in same["ours"].iloc[2]
    # too many successes broken
    broke = _verdicts(_curve(0.3, RANDOM), _items({2.0: 0.6, 1.0: 0.0, 0.0: 0.1}, broken=0.1))
    assert broke["verdict"].iloc[2] == "not reproduced"
    # fewer than 30 failures per direction
    few = _verdicts(_curve(0.3, RANDOM), _items({2.0: 0.6, 1.0: 0.0, 0.0: 0.1}, n_failed=6))
    assert few["verdict"].iloc[2] == "not measurable" and "6 failures" in few["ours"].iloc[2]


def test_mixed_results_are_named_by_the_discussion():
    from mfutils.book.discussion import negative_alpha_repairs, non_monotonic

    rows = [{"heads": "none", "fraction": 0.0, "k": 0, "draw": 0, "measure": "MF text", "value": 1.0, "followed": 100, "n": 100}]
    for f, v in [(0.01, 1.0), (0.02, 0.03), (0.05, 0.9), (0.10, 0.6)]:
        rows.append({"heads": "top", "fraction": f, "k": 1, "draw": 0, "measure": "MF text", "value": v,
                     "followed": round(100 * v), "n": 100})
        rows.append({"heads": "random", "fraction": f, "k": 1, "draw": 0, "measure": "MF text", "value": 1.0,
                     "followed": 100, "n": 100})
    summary = summarize_blocking(pd.DataFrame(rows))
    amp = pd.DataFrame([{"alpha": -1.0, "target": "text", "n_failed": 10, "repaired": 0.4, "repaired_ci_low": 0.1,
                         "repaired_ci_high": 0.7, "n_followed": 90, "broken": 0.3},
                        {"alpha": 2.0, "target": "text", "n_failed": 10, "repaired": 0.0,
                         "repaired_ci_low": 0.0, "repaired_ci_high": 0.0, "n_followed": 90, "broken": 0.0}])
    notes = non_monotonic(summary) + negative_alpha_repairs(amp)
    assert any("Not monotonic" in n and "1.00 → 1.00 → 0.03 → 0.90 → 0.60" in n for n in notes)
    assert any("α = -1 turns 40% of failures (text following)" in n for n in notes)
    monotone = summarize_blocking(pd.DataFrame([r if r["heads"] != "top" else {**r, "value": 1 - r["fraction"]} for r in rows]))
    assert non_monotonic(monotone) + negative_alpha_repairs(amp.iloc[1:]) == []


def test_chapter_5_chooses_its_heads_on_chapter_4s_scores_read_or_recomputed_alike(tiny_bundle, tmp_path):
    from dataclasses import replace

    from mfutils.book import chapters
    from mfutils.findings import head_scores
    from mfutils.findings.causal import CausalSpec
    from mfutils.runs.results import RunWriter
    from tests.helpers import fill_declared

    spec = CausalSpec(model_id="organism", n_samples=3, control_filter=False, output_dir=str(tmp_path),
                      batch_size=4, num_threads=1)
    computed, splits, where = crossrefs.chapter4_scores(spec, tiny_bundle)
    assert where.startswith("computed here")
    assert splits == []  # 3 conflicts per direction: too few to split in three
    ch04 = chapters.chapter_spec("04_sparse_heads", **{k: v for k, v in spec.to_dict().items() if k != "chapter"})
    assert (ch04.n_samples, ch04.seed, ch04.batch_size, ch04.exhaustive) == (3, 0, 4, False)

    def finished_ch04(s):
        w = RunWriter(s)
        head_scores.save_scores(w.path("scores.npz"), computed)
        w.write_json("results.json", {"selection_splits": [{"split": 1, "heads": [[0, 1]]}]})
        fill_declared(w)
        w.finish()

    finished_ch04(ch04)
    read, read_splits, where = crossrefs.chapter4_scores(spec, tiny_bundle)
    assert where.startswith("read from chapter 4's finished run")
    assert read_splits == [{"split": 1, "heads": [(0, 1)]}]
    for t in computed:
        for part in ("follow", "control"):
            for k in head_scores.SAVED_SCORES:
                np.testing.assert_array_equal(read[t][part][k], computed[t][part][k])
                assert read[t][part][k].dtype == computed[t][part][k].dtype
    assert head_scores.arbitration_heads(read, "fast", 0.25) == head_scores.arbitration_heads(computed, "fast", 0.25)
    # another batch size shares the folder's digest but not its numbers bit for bit: not taken
    finished_ch04(replace(ch04, batch_size=2))
    assert crossrefs.chapter4_scores(spec, tiny_bundle)[2].startswith("computed here")
    # an unfinished chapter 4 (no manifest) is never read
    finished_ch04(ch04)
    (ch04.run_dir() / "_COMPLETE.json").unlink()
    assert crossrefs.chapter4_scores(spec, tiny_bundle)[2].startswith("computed here")


def test_each_selection_split_gets_its_own_random_band_and_verdict(tiny_bundle):
    from mfutils.book.discussion import split_sentence
    from mfutils.findings.causal import split_blocking
    from mfutils.findings.evaluation import general_ability_controls

    items = synthetic.paper_conflicts(4, seed=7)
    controls = general_ability_controls(items)
    splits = [{"split": 1, "heads": [(0, 0), (1, 1)]}, {"split": 2, "heads": [(0, 0)]}, {"split": 3, "heads": []}]
    table, draws = split_blocking(tiny_bundle, items, controls, splits, [(0, 0), (1, 0)], 8, rules.MIN_RANDOM_DRAWS,
                                  0, 0.05)
    assert table["split"].tolist() == [1, 2, 3] and table["heads"].tolist() == [2, 1, 0]
    assert table["jaccard with pre-registered"].tolist() == pytest.approx([1 / 3, 1 / 2, 0.0])
    assert table["verdict"].iloc[2] == "not measurable"  # an empty set has nothing to block
    assert set(table["verdict"].iloc[:2]) <= set(rules.VERDICT_ORDER)
    for j in (1, 2):
        random_sets = draws[(draws["split"] == j) & (draws["heads"] == "random")]
        assert random_sets["draw"].nunique() == rules.MIN_RANDOM_DRAWS
    assert "3 disjoint splits chose 2, 1, 0 heads" in split_sentence(table)
