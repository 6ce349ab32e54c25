from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mfutils import synthetic
from mfutils.encoding import encode
from mfutils.lens import LensTrace, ldar, per_layer, trace
from mfutils.metrics import answer_tokens, last_logits


def test_contributions_plus_embedding_sum_to_final_lens_and_model_logits(tiny_bundle):
    items = synthetic.paper_conflicts(4, seed=0)
    meta, tr = trace(tiny_bundle, items, batch_size=8)
    parts = per_layer(tr)
    total = parts["margin_embed"] + parts["margin_attn"].sum(1) + parts["margin_mlp"].sum(1)
    assert np.allclose(total, parts["margin_lens"][:, -1], atol=1e-4)
    # the last lens value is the model's own margin
    assert np.allclose(parts["margin_lens"][:, -1], meta["model_margin"], atol=1e-4)
    batch = encode(tiny_bundle, items)
    with torch.no_grad():
        logits = last_logits(tiny_bundle.model(**batch.inputs), batch.lengths)
    f = [torch.logsumexp(logits[b, list(answer_tokens(tiny_bundle.tokenizer, it).following)], 0) for b, it in enumerate(items)]
    assert np.allclose(parts["follow_lens"][:, -1], torch.stack(f).numpy(), atol=1e-4)


def test_ldar_counts_agreement_and_drops_neither_answers():
    # two layers; three samples: final decisions follow, competitor, neither
    follow = np.array([[0, 0, 1, 1, 2], [0, 0, -1, -1, -3], [0, 0, 0, 0, 0]], dtype=float)
    comp = np.zeros_like(follow)
    meta = pd.DataFrame({"decision": [1, -1, 0], "model_margin": [2.0, -3.0, 0.0]})
    rate = ldar(meta, LensTrace(follow, comp))
    assert rate.tolist() == [1.0, 1.0]
    flipped = LensTrace(-follow, comp)
    assert ldar(meta, flipped).tolist() == [0.0, 0.0]


def test_an_empty_group_keeps_the_summary_columns_numeric():
    """A group with no samples (e.g. no failures) must not turn the table's columns into objects."""
    import numpy as np
    import pandas as pd

    from mfutils.lens import summarize_layers

    full = summarize_layers(np.ones((4, 3)), 3, "value", n_boot=10)
    empty = summarize_layers(np.ones((0, 3)), 3, "value", n_boot=10)
    both = pd.concat([full, empty], ignore_index=True)
    assert all(both[c].dtype.kind == "f" for c in ("depth", "value", "ci_low", "ci_high"))
