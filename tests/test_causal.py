from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfutils.book import crossrefs
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


def _curve(top_value: float, random_values: list[float], ctrl_top: float = 1.0) -> pd.DataFrame:
    rows = [{"heads": "none", "fraction": 0.0, "k": 0, "draw": 0, "measure": m, "value": 1.0}
            for m in ("MF image", "MF text", "image_only", "text_only")]
    for m in ("MF image", "MF text"):
        rows.append({"heads": "top", "fraction": 0.05, "k": 4, "draw": 0, "measure": m, "value": top_value})
        rows += [{"heads": "random", "fraction": 0.05, "k": 4, "draw": d, "measure": m, "value": v}
                 for d, v in enumerate(random_values)]
    for m in ("image_only", "text_only"):
        rows.append({"heads": "top", "fraction": 0.05, "k": 4, "draw": 0, "measure": m, "value": ctrl_top})
    return pd.DataFrame(rows)


def test_blocking_verdict_needs_the_top_heads_beyond_every_random_draw():
    amp = pd.DataFrame([{"alpha": 2.0, "n_failed": 10, "repaired": 0.6, "repaired_ci_low": 0.3,
                         "repaired_ci_high": 0.9, "n_followed": 90, "broken": 0.01}])
    strong = verdicts(summarize_blocking(_curve(0.3, [0.95, 0.97, 0.99])), amp)
    assert list(strong["verdict"]) == ["reproduced", "reproduced", "reproduced"]
    assert "70%" in strong["ours"].iloc[0]  # relative drop 1.0 -> 0.3
    weak = verdicts(summarize_blocking(_curve(0.97, [0.95, 0.97, 0.99], ctrl_top=0.5)), amp)
    assert weak["verdict"].iloc[0] == "not reproduced"
    assert weak["verdict"].iloc[1] == "not reproduced"  # the controls fell from 1.0 to 0.5
    none = verdicts(summarize_blocking(_curve(0.3, [0.9])), amp.assign(n_failed=0))
    assert none["verdict"].iloc[2] == "not measurable"


def test_amplification_verdict_reads_the_preregistered_alpha_only():
    summary = summarize_blocking(_curve(0.3, [0.95, 0.97, 0.99]))
    amp = pd.DataFrame([{"alpha": a, "n_failed": 20, "repaired": r, "repaired_ci_low": 0.0, "repaired_ci_high": 1.0,
                         "n_followed": 80, "broken": b} for a, r, b in [(-1.0, 0.9, 0.5), (2.0, 0.05, 0.0), (10.0, 0.8, 0.1)]])
    v = verdicts(summary, amp)
    # alpha = -1 and alpha = 10 "repair" more, but the rule reads alpha = 2, fixed before the run
    assert v["verdict"].iloc[2] == "not reproduced" and "α = 2" in v["ours"].iloc[2]
    # repairs that break as many successes as they fix do not count
    v = verdicts(summary, amp.assign(repaired=0.5, broken=0.6))
    assert v["verdict"].iloc[2] == "not reproduced"


def test_mixed_results_are_named_by_the_discussion():
    from mfutils.book.discussion import negative_alpha_repairs, non_monotonic

    rows = [{"heads": "none", "fraction": 0.0, "k": 0, "draw": 0, "measure": "MF text", "value": 1.0}]
    for f, v in [(0.01, 1.0), (0.02, 0.03), (0.05, 0.9), (0.10, 0.6)]:
        rows.append({"heads": "top", "fraction": f, "k": 1, "draw": 0, "measure": "MF text", "value": v})
        rows.append({"heads": "random", "fraction": f, "k": 1, "draw": 0, "measure": "MF text", "value": 1.0})
    summary = summarize_blocking(pd.DataFrame(rows))
    amp = pd.DataFrame([{"alpha": -1.0, "n_failed": 10, "repaired": 0.4, "repaired_ci_low": 0.1, "repaired_ci_high": 0.7,
                         "n_followed": 90, "broken": 0.3}, {"alpha": 2.0, "n_failed": 10, "repaired": 0.0,
                         "repaired_ci_low": 0.0, "repaired_ci_high": 0.0, "n_followed": 90, "broken": 0.0}])
    notes = non_monotonic(summary) + negative_alpha_repairs(amp)
    assert any("Not monotonic" in n and "1.00 → 1.00 → 0.03 → 0.90 → 0.60" in n for n in notes)
    assert any("α = -1 turns 40%" in n for n in notes)
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
    computed, where = crossrefs.chapter4_scores(spec, tiny_bundle)
    assert where.startswith("computed here")
    ch04 = chapters.chapter_spec("04_sparse_heads", **{k: v for k, v in spec.to_dict().items() if k != "chapter"})
    assert (ch04.n_samples, ch04.seed, ch04.batch_size, ch04.exhaustive) == (3, 0, 4, False)

    def finished_ch04(s):
        w = RunWriter(s)
        head_scores.save_scores(w.path("scores.npz"), computed)
        fill_declared(w)
        w.finish()

    finished_ch04(ch04)
    read, where = crossrefs.chapter4_scores(spec, tiny_bundle)
    assert where.startswith("read from chapter 4's finished run")
    for t in computed:
        for part in ("follow", "control"):
            for k in head_scores.SAVED_SCORES:
                np.testing.assert_array_equal(read[t][part][k], computed[t][part][k])
                assert read[t][part][k].dtype == computed[t][part][k].dtype
    assert head_scores.arbitration_heads(read, "fast", 0.25) == head_scores.arbitration_heads(computed, "fast", 0.25)
    # another batch size shares the folder's digest but not its numbers bit for bit: not taken
    finished_ch04(replace(ch04, batch_size=2))
    assert crossrefs.chapter4_scores(spec, tiny_bundle)[1].startswith("computed here")
    # an unfinished chapter 4 (no manifest) is never read
    finished_ch04(ch04)
    (ch04.run_dir() / "_COMPLETE.json").unlink()
    assert crossrefs.chapter4_scores(spec, tiny_bundle)[1].startswith("computed here")
