"""Activation patching across instructions (mfutils.findings.patching) on every family: patching
a run from itself changes nothing, and patching every position at layer 0 from the other
instruction's run gives that run."""

from __future__ import annotations

import torch

from mfutils.data import synthetic
from mfutils.engine import incremental
from mfutils.engine.encoding import encode
from mfutils.engine.interventions import active_hook_count
from mfutils.findings.patching import SITES, opposite_pairs, patched_logits

ATOL = 1e-4


def test_patching_from_the_same_run_is_the_identity(bundle):
    batch = encode(bundle, synthetic.paper_conflicts(2, seed=7))
    run = incremental.clean_run(bundle, batch)
    for site in SITES:
        positions = [sp[site] for sp in batch.spans]
        starts = torch.tensor([min(p) for p in positions])
        for layer in range(bundle.adapter.n_layers):
            same = patched_logits(bundle, run, run, layer, positions)
            # bit for bit what the same recomputation gives unpatched, and the clean pass within float tolerance
            assert torch.equal(same, incremental.own_suffix_logits(bundle, run, layer, starts)), (site, layer)
            assert torch.allclose(same, run.logits, atol=ATOL)
    assert active_hook_count() == 0


def test_patching_every_position_at_layer_0_gives_the_other_instructions_run(bundle):
    pairs = opposite_pairs(synthetic.paper_conflicts(2, seed=7))
    assert len(pairs) == 4 and all(r.target != d.target and r.image_ref == d.image_ref for r, d in pairs)
    rec, don = encode(bundle, [r for r, _ in pairs]), encode(bundle, [d for _, d in pairs])
    assert rec.inputs["input_ids"].shape == don.inputs["input_ids"].shape  # the two sentences line up
    run, donor = incremental.clean_run(bundle, rec), incremental.clean_run(bundle, don)
    assert not torch.allclose(run.logits, donor.logits, atol=ATOL)  # the instructions do differ
    every = [list(range(int(n))) for n in rec.lengths]
    assert torch.allclose(patched_logits(bundle, run, donor, 0, every), donor.logits, atol=ATOL)
