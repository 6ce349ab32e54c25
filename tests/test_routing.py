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
