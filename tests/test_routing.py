from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfutils.data import synthetic
from mfutils.findings.routing import effect_measures, knockout_sweep, window_layers


def test_window_layers_is_centred_and_clipped():
    assert window_layers(0, 3, 8) == [0, 1]
    assert window_layers(4, 3, 8) == [3, 4, 5]
    assert window_layers(7, 1, 8) == [7]


def test_i_nssd_sign_and_zero():
    df = pd.DataFrame({"p_bin": [0.8, 0.8, 0.8], "p_bin_ko": [0.8, 0.4, 0.9], "p_full": [0.5] * 3,
                       "p_full_ko": [0.5, 0.1, 0.6], "p_comp_full": [0.1] * 3, "p_comp_full_ko": [0.1] * 3})
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731  (the binary distribution's log-odds = logit difference)
    df = df.assign(ld=logit(df["p_bin"]), ld_ko=logit(df["p_bin_ko"]))
    e = effect_measures(df)
    assert e["i_nssd"].iloc[0] == 0 and e["signed_kl"].iloc[0] == 0 and e["log_odds"].iloc[0] == 0
    assert e["i_nssd"].iloc[1] == pytest.approx(np.log(0.5)) and e["i_nssd"].iloc[1] < 0
    assert (np.sign(e.loc[1:, ["i_nssd", "signed_kl", "log_odds", "unconstrained"]]).to_numpy() == [[-1] * 4, [1] * 4]).all()
    assert e["log_odds"].iloc[1] == pytest.approx(logit(0.4) - logit(0.8))


def test_empty_edge_has_zero_effect_and_clean_run_is_shared(tiny_bundle):
    items = synthetic.paper_conflicts(3, seed=1)
    # 'neutral' is absent from the paper layout: cutting it is an empty knockout
    df = knockout_sweep(tiny_bundle, items, [("neutral", "last"), ("vision", "last")], window=1, batch_size=8)
    e = effect_measures(df)
    empty = e[e["edge"] == "Neutral -/-> Last"]
    assert len(empty) and (empty["i_nssd"] == 0).all() and (empty["p_full"] == empty["p_full_ko"]).all()
    assert len(df) == 2 * tiny_bundle.adapter.n_layers * len(items)
    assert (df.groupby("uid")["p_bin"].nunique() == 1).all()


def _lengths(bundle, items):
    from mfutils.engine.encoding import encode

    batch = encode(bundle, items)
    return [int(n) for n in batch.lengths]


def test_incremental_sweep_equals_the_naive_one_and_does_less_work(tiny_bundle):
    items = synthetic.paper_conflicts(3, seed=4)
    edges = [("vision", "last"), ("text_context", "instruction"), ("vision", "text")]
    work_n, work_i = {}, {}
    naive = knockout_sweep(tiny_bundle, items, edges, window=1, batch_size=4, engine="naive", work=work_n)
    fast = knockout_sweep(tiny_bundle, items, edges, window=1, batch_size=4, work=work_i)
    assert naive[["uid", "edge", "layer"]].equals(fast[["uid", "edge", "layer"]])
    assert np.allclose(naive["ld_ko"], fast["ld_ko"], atol=1e-4) and np.allclose(naive["ld"], fast["ld"], atol=1e-4)
    assert work_i["naive"] == work_n["naive"] and work_i["incremental"] < 0.6 * work_i["naive"]
    # the per-edge split adds up to the total (the clean pass aside), and no edge's floor
    # exceeds what the engine spent on it; into the last position, the floor is one token's path
    by_edge = work_i["by_edge"]
    spent = sum(e["incremental"] for e in by_edge.values())
    assert spent + len(items) == pytest.approx(work_i["incremental"])
    assert all(0 < e["per-sample floor"] <= e["incremental"] + 1e-9 for e in by_edge.values())
    # into the last position, the engine recomputes one token per sample, as the floor does
    L = tiny_bundle.adapter.n_layers
    one_token = sum((L - l) / (L * max(_lengths(tiny_bundle, chunk))) * len(chunk)
                    for chunk in (items[:4], items[4:]) for l in range(L))  # batch_size=4: T per batch
    assert by_edge["Vision -/-> Last"]["per-sample floor"] == pytest.approx(one_token)
    assert by_edge["Vision -/-> Last"]["incremental"] == pytest.approx(one_token)
    with pytest.raises(ValueError, match="engine"):
        knockout_sweep(tiny_bundle, items, edges, window=1, batch_size=4, engine="fast")


def test_the_position_controls_take_the_first_conflicts_of_each_direction():
    from mfutils.data import synthetic
    from mfutils.runs.params import ParameterError
    from mfutils.findings.routing import RoutingSpec, first_per_direction

    items = synthetic.paper_conflicts(5, seed=0)  # five image-following, then the same five text-following
    picked = first_per_direction(items, 2)
    assert [it.uid for it in picked] == [it.uid for it in items[:2] + items[5:7]]
    assert [it.uid.rsplit("/", 1)[0] for it in picked[:2]] == [it.uid.rsplit("/", 1)[0] for it in picked[2:]]
    assert first_per_direction(items, 50) == items
    with pytest.raises(ParameterError, match="layout_samples"):
        RoutingSpec(chapter="01_shallow_routing", layout_samples=1)


def _layout_table(paper_instr, paper_constr, moved_instr, moved_constr):
    rows = []
    for layout, (i, c) in (("paper", (paper_instr, paper_constr)), ("instruction_after_constraint", (moved_instr, moved_constr))):
        rows += [{"layout": layout, "edge": "TextCtx -/-> Instruction", "target": "text", "layer": 24, "depth": 0.8, "log_odds": i},
                 {"layout": layout, "edge": "TextCtx -/-> Constraint", "target": "text", "layer": 24, "depth": 0.8, "log_odds": c}]
    return pd.DataFrame(rows)


def test_position_sentences_say_whether_a_flow_follows_the_role_or_the_position():
    from mfutils.findings.routing import position_sentences

    # the strongest flow went into the constraint, and into the instruction once it took the constraint's place
    moved = position_sentences(_layout_table(-0.09, -1.19, -0.49, -0.19))
    assert len(moved) == 1 and "follows the position, not the role" in moved[0] and "-1.19" in moved[0]
    stays = position_sentences(_layout_table(-1.0, -0.1, -0.9, -0.1))
    assert "stays into the instruction" in stays[0]
    small = position_sentences(_layout_table(-0.1, -0.1, -0.1, -0.2))
    assert "cannot tell" in small[0]


def test_the_route_map_puts_edges_into_the_last_position_first_and_marks_the_papers_peaks():
    from mfutils.findings.reference import paper_curves
    from mfutils.findings.routing import paper_route_marks, route_map

    curve = pd.DataFrame([{"target": t, "edge": e, "layer": l, "depth": (l + 0.5) / 4, "n": 8, "log_odds": -1.0,
                           "log_odds_ci_low": -1.5, "log_odds_ci_high": -0.5}
                          for t in ("image", "text") for e in ("Vision -/-> Text", "Template -/-> Last") for l in range(4)])
    m = route_map(curve)
    assert m["edge"].iloc[0] == "Template -/-> Last" and len(m) == len(curve)
    marks = paper_route_marks(paper_curves(model="Qwen2.5-VL-7B"))
    vt = marks[(marks["edge"] == "Vision -/-> Text") & (marks["target"] == "image")].iloc[0]
    assert vt["value"] == pytest.approx(-1.36, abs=0.05) and 0.4 < vt["depth"] < 0.6
    assert "Vision -/-> TextCtx" in set(marks["edge"])  # the paper's "Text Context" in our edge names


def test_patching_across_instructions_on_the_tiny_model(tiny_bundle):
    from mfutils.book.discussion import how_it_arbitrates
    from mfutils.engine.interventions import active_hook_count
    from mfutils.findings import patching
    from mfutils.findings.routing import LAST_EDGES, curves, route_map

    items = synthetic.paper_conflicts(3, seed=2)
    rows, left_out = patching.patch_sweep(tiny_bundle, items, 8)
    L = tiny_bundle.adapter.n_layers
    assert left_out == 0 and len(rows) == len(items) * len(patching.SITES) * L
    pc = patching.patch_curves(rows, L, n_boot=50)
    assert pc["flipped"].between(0, 1).all() and set(pc["site"]) == set(patching.SITES)
    # at layer 0 the last position holds only its own token, the same under both instructions: no flip
    first = pc[(pc["site"] == "last") & (pc["layer"] == 0)]
    assert (first["flipped"] == 0).all() and np.allclose(first["log_odds"], 0, atol=1e-4)
    sweep = knockout_sweep(tiny_bundle, items, LAST_EDGES, 1, 8)
    curve = curves(sweep, L, n_boot=50)
    from mfutils.findings.routing import last_edge_rows

    described = last_edge_rows(sweep, curve, L, n_boot=50)
    assert len(described) == 2 * len(LAST_EDGES) and "Template→Last" in set(described["edge"])
    row = patching.verdict(pc, curve, L)
    assert row["rule"] == "01-qf" and row["verdict"] in ("met", "partly", "not met")
    text = how_it_arbitrates("tiny organism", route_map(curve), pc, L)
    assert text.startswith("**How the tiny organism arbitrates.**") and "Where the cue is fetched" in text
    assert active_hook_count() == 0


def test_a_flow_that_vanishes_when_moved_is_named_so():
    from mfutils.findings.routing import position_sentences

    gone = position_sentences(_layout_table(-0.1, -0.6, -0.1, -0.2))
    assert "no flow reaches the effect threshold" in gone[0] and "the none" not in gone[0]
