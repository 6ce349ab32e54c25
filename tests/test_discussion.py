"""The generated discussion: each anomaly rule fires on the pattern it names, and only then."""

from __future__ import annotations

import pandas as pd

from mfutils.book import discussion


def _curve(peak_layer, value=-1.0, n_layers=8):
    return pd.DataFrame([{"edge": "Vision -/-> Text", "target": "image", "layer": l, "depth": (l + 0.5) / n_layers,
                          "log_odds": value if l == peak_layer else 0.0} for l in range(n_layers)])


def test_early_effects_fire_on_a_first_layer_peak_only():
    assert "depth 0.06" in discussion.early_effects(_curve(0))[0]
    assert discussion.early_effects(_curve(4)) == []
    assert discussion.early_effects(_curve(0, value=-0.1)) == []  # below the effect threshold


def test_non_monotonic_blocking_and_negative_alpha():
    rows = [{"measure": "MF text", "fraction": f, "baseline": 1.0, "top": t} for f, t in ((0.01, 0.03), (0.02, 0.9), (0.05, 0.6))]
    out = discussion.non_monotonic(pd.DataFrame(rows))
    assert out and "1.00 → 0.03 → 0.90 → 0.60" in out[0]
    falling = [{"measure": "MF text", "fraction": f, "baseline": 1.0, "top": t} for f, t in ((0.01, 0.9), (0.02, 0.5), (0.05, 0.45))]
    assert discussion.non_monotonic(pd.DataFrame(falling)) == []
    amp = pd.DataFrame({"alpha": [-1.0, 0.0, 2.0], "n_failed": 40, "repaired": [0.35, 0.05, 0.02], "broken": 0.7})
    out = discussion.negative_alpha_repairs(amp)
    assert len(out) == 1 and "α = -1 turns 35%" in out[0] and "α = 0" not in out[0] and "against 2%" in out[0]
    assert discussion.negative_alpha_repairs(amp.assign(repaired=[0.0, 0.0, 0.5])) == []


def test_below_chance_and_early_heads_and_margin():
    ldar = pd.DataFrame([{"read": "mean", "outcome": "all", "target": "text", "layer": l, "ldar": 0.47, "chance": 0.99,
                          "balanced": 0.5} for l in range(8)])
    assert "LDAR 0.47 against 0.99" in discussion.below_chance(ldar, 8)[0]
    assert discussion.below_chance(ldar.assign(ldar=0.99), 8) == []
    assert "layers [0, 1]" in discussion.early_heads([(0, 3), (1, 2)], 8)[0]
    assert discussion.early_heads([(0, 3), (6, 2)], 8) == []
    assert "layer 0" in discussion.early_margin({"image": 0, "text": 6}, 8)[0]
    assert discussion.early_margin({"image": 5}, 8) == []


def test_the_section_says_each_verdict_group_and_what_would_decide():
    v = pd.DataFrame([{"claim": "A holds.", "ours": "1.0", "verdict": "reproduced"},
                      {"claim": "B holds", "ours": "0.1", "verdict": "not reproduced"}])
    text = discussion.what_this_run_shows("05_causal_interventions", v, [], "organism")
    assert "**Agrees with the paper.**\n\n- A holds (ours: 1.0)" in text and "**Does not agree.**\n\n- B holds" in text
    assert "None of the anomaly rules" in text and "What would decide it on a real model" in text
    assert "Anomalies" not in discussion.what_this_run_shows("00_behaviour", v, None, "organism")


def test_our_own_hypothesis_is_kept_apart_from_the_papers_claims():
    import pandas as pd

    from mfutils.book.chapters import plain_summary
    from mfutils.book.discussion import verdict_paragraphs

    v = pd.DataFrame([{"claim": "A paper claim", "ours": "x", "rule": "01-vl", "verdict": "not reproduced"},
                      {"claim": "Query, then fetch", "ours": "y", "rule": "01-qf", "verdict": "met"}])
    summary = plain_summary(v)
    assert "shows 0 of the 1 claims" in summary and "Our own hypothesis (01-qf)" in summary
    paragraphs = verdict_paragraphs(v)
    assert not any("Agrees with the paper" in p for p in paragraphs)
    assert paragraphs[-1].startswith("**Our own hypothesis, beyond the paper.**") and "*met*" in paragraphs[-1]


def test_ablation_harms_names_the_drops_at_or_above_its_threshold():
    import pandas as pd

    from mfutils.book.discussion import ablation_harms

    effect = pd.DataFrame([{"target": "image", "MF clean": 0.61, "MF ablated": 0.45},
                           {"target": "text", "MF clean": 0.62, "MF ablated": 0.62}])
    controls = pd.DataFrame([{"measure": "image_only", "clean": 1.0, "ablated": 0.75},
                             {"measure": "text_only", "clean": 1.0, "ablated": 0.97}])
    (s,) = ablation_harms(effect, controls)
    assert "image following 61% → 45%" in s and "image-only answers 100% → 75%" in s
    assert "text following" not in s and "text-only" not in s
    assert ablation_harms(effect.assign(**{"MF ablated": effect["MF clean"]}), controls.assign(ablated=1.0)) == []


def test_the_discussion_writes_result_names_as_words():
    import pandas as pd

    from mfutils.book import discussion

    v = pd.DataFrame([{"claim": "General ability survives", "ours": "image_only: 1.00 → 1.00", "rule": "05-general",
                       "verdict": "reproduced"}])
    text = discussion.what_this_run_shows("05_causal_interventions", v, [], "organism")
    assert "image_only" not in text and "image-only: 1.00 → 1.00" in text
