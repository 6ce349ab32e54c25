"""The pre-registered rule table and the verdict rules built on it (issue: verdicts that
can't flatter or hide a result)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfutils.findings import rules
from mfutils.findings.routing import RULE_EDGES, effect_measures, i_nssd_cap, verdicts as routing_verdicts, curves


def test_every_rule_is_unique_and_every_chapter_prints_its_rows():
    ids = [r.id for r in rules.RULES]
    assert len(ids) == len(set(ids))
    for chapter in ("01_shallow_routing", "02_deep_arbitration", "03_mlp_inertia", "04_sparse_heads",
                    "05_causal_interventions"):
        t = rules.table(chapter)
        assert len(t) and {"rule", "claim", "measure", "band (relative depth)", "expect", "control / bypass"} <= set(t.columns)
    # 01-qf is judged by activation patching (mfutils.findings.patching), not by a knockout edge
    assert set(RULE_EDGES) == {r.id for r in rules.RULES if r.chapter == "01_shallow_routing"} - {"01-qf"}


def test_bands_are_relative_depth_with_a_nearest_layer_fallback():
    assert rules.band_layers(rules.ROUTING_BAND, 28) == [13, 14, 15, 16]  # the paper's critical layers
    assert rules.band_layers(rules.ROUTING_BAND, 8) == [4]
    assert rules.band_layers((0.45, 0.5), 2) == [0]  # no layer inside: the nearest to the centre
    assert rules.band_layers(rules.LATE, 30) == list(range(22, 30))


def _sweep(effects: dict[tuple[str, str], dict[int, float]], n: int = 40, n_layers: int = 8, ld: float = 6.2,
           noise: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Per-sample knockout rows with a given mean log-odds change per (edge, target, layer)."""
    rng = np.random.default_rng(seed)
    rows = []
    edges = {e for e, _ in RULE_EDGES.values()} | {rules.rule(r).bypass for r in RULE_EDGES if rules.rule(r).bypass}
    for edge in sorted(edges):
        for target in ("image", "text"):
            for layer in range(n_layers):
                mean = effects.get((edge, target), {}).get(layer, 0.0)
                for i in range(n):
                    d = mean + noise * rng.standard_normal()
                    p, q = 1 / (1 + np.exp(-ld)), 1 / (1 + np.exp(-(ld + d)))
                    rows.append({"uid": f"{target}{i}", "target": target, "edge": edge, "layer": layer,
                                 "p_bin": p, "p_bin_ko": q, "p_full": p, "p_full_ko": q, "p_comp_full": 1 - p,
                                 "p_comp_full_ko": 1 - q, "ld": ld, "ld_ko": ld + d})
    return pd.DataFrame(rows)


def _verdicts(effects, **kw) -> dict[str, str]:
    sweep = _sweep(effects, **kw)
    v = routing_verdicts(sweep, curves(sweep, 8, 200), 8, 200)
    return dict(zip(v["rule"], v["verdict"]))


def test_log_odds_does_not_saturate_where_i_nssd_is_capped():
    # a confident toy: p_f = 0.998; a knockout that makes it certain to follow
    sweep = _sweep({("Vision -/-> Text", "text"): {4: 6.0}}, noise=0.0)
    e = effect_measures(sweep)
    helped = e[(e["edge"] == "Vision -/-> Text") & (e["target"] == "text") & (e["layer"] == 4)]
    cap = i_nssd_cap(sweep)
    assert cap["text"] == pytest.approx(-np.log(1 / (1 + np.exp(-6.2))))
    assert (helped["i_nssd"] <= cap["text"] + 1e-12).all() and helped["i_nssd"].max() < 0.003
    assert helped["log_odds"].to_numpy() == pytest.approx(6.0)
    # the same knockout is reproduced on the log-odds rule, and I_NSSD could never reach 0.25
    assert _verdicts({("Vision -/-> Text", "text"): {4: 6.0}}, noise=0.0)["01-vt-text"] == "reproduced"


def test_verdicts_use_the_band_mean_not_a_peak_layer():
    # a large effect at layer 0 only: outside the routing band (layer 4 of 8), so it does not count
    v = _verdicts({("Vision -/-> Text", "image"): {0: -3.0}})
    assert v["01-vt-image"] == "not reproduced"
    assert _verdicts({("Vision -/-> Text", "image"): {4: -1.0}})["01-vt-image"] == "reproduced"
    # significant, at least half the threshold: partly; below half: not reproduced (rule of 2026-12-06)
    assert _verdicts({("Vision -/-> Text", "image"): {4: -0.15}}, n=200, noise=0.02)["01-vt-image"] == "partly"
    assert _verdicts({("Vision -/-> Text", "image"): {4: -0.1}}, n=200, noise=0.02)["01-vt-image"] == "not reproduced"


def test_band_statistic_is_a_bootstrap_of_the_band_mean():
    per_sample = pd.DataFrame({"uid": np.repeat(np.arange(50), 3), "layer": np.tile([3, 4, 5], 50),
                               "v": np.tile([10.0, -1.0, 10.0], 50) + np.repeat(np.linspace(-0.1, 0.1, 50), 3)})
    means = rules.band_mean(per_sample, [4], "v")
    est, lo, hi = rules.band_statistic(means, n_boot=300)
    assert est == pytest.approx(-1.0) and lo < est < hi and hi - lo < 0.1
    assert rules.band_statistic(means, 300) == rules.band_statistic(means, 300)  # seeded


def test_a_route_weaker_than_its_bypass_is_not_reproduced():
    route = {("TextCtx -/-> Instruction", "text"): {4: -0.5}}
    assert _verdicts({**route, ("TextCtx -/-> Last", "text"): {4: -5.0}})["01-ti"] == "not reproduced"
    assert _verdicts({**route, ("TextCtx -/-> Last", "text"): {4: -0.05}})["01-ti"] == "reproduced"
    # a bypass stronger anywhere, even outside the routing band, beats the route
    assert _verdicts({**route, ("TextCtx -/-> Last", "text"): {7: -2.0}})["01-ti"] == "not reproduced"
    sweep = _sweep(route)
    no_bypass = sweep[sweep["edge"] != "TextCtx -/-> Last"]
    v = routing_verdicts(no_bypass, curves(no_bypass, 8, 100), 8, 100).set_index("rule")["verdict"]
    assert v["01-ti"] == "not measured"


def test_figure2_null_claims_have_their_own_rows():
    v = _verdicts({})
    assert v["01-vl"] == "reproduced" and v["01-tl"] == "reproduced"
    v = _verdicts({("Vision -/-> Last", "image"): {6: -1.5}, ("Text -/-> Last", "text"): {0: -2.0, 7: -2.0}})
    assert v["01-vl"] == "not reproduced" and v["01-tl"] == "not reproduced"
    # Text->Last late (outside its 0-0.65 band) is allowed
    assert _verdicts({("Text -/-> Last", "text"): {7: -2.0}})["01-tl"] == "reproduced"


def test_combine_needs_every_direction_for_reproduced():
    assert rules.combine_directions({"image": "reproduced", "text": "reproduced"})[0] == "reproduced"
    assert rules.combine_directions({"image": "reproduced", "text": "not reproduced"})[0] == "not reproduced"
    assert rules.combine_directions({"image": "not reproduced", "text": "not reproduced"})[0] == "not reproduced"

def test_a_finding_holds_only_when_every_measured_claim_shows_it():
    assert rules.finding_holds(["reproduced", "reproduced"]) == "holds"
    assert rules.finding_holds(["met"] * 8) == "holds"
    assert rules.finding_holds(["reproduced", "not measurable"]) == "in part"
    assert rules.finding_holds(["reproduced", "not reproduced"]) == "in part"
    assert rules.finding_holds(["partly", "not reproduced"]) == "in part"
    assert rules.finding_holds(["not reproduced", "not measurable"]) == "does not hold"
    assert rules.finding_holds(["not measurable", "not run"]) == "not measured"
    assert rules.finding_holds([]) == "not measured"


def test_between_families_names_the_one_a_finding_holds_in():
    assert rules.between_families({"SmolLM2": "holds", "Gemma": "holds"}) == "holds in both"
    assert rules.between_families({"SmolLM2": "does not hold", "Gemma": "does not hold"}) == "holds in neither"
    assert rules.between_families({"SmolLM2": "in part", "Gemma": "holds"}) == "holds in Gemma only"
    assert rules.between_families({"SmolLM2": "in part", "Gemma": "does not hold"}) == "in part in SmolLM2; does not hold in Gemma"
    assert rules.between_families({"SmolLM2": "not run", "Gemma": "not run"}) == "run in neither"
