"""Training is deterministic and writes a complete checkpoint with its model card."""

from __future__ import annotations

from mfutils.organism import OrganismConfig
from mfutils.training import TrainConfig, train

TINY = OrganismConfig(n_layers=2, n_heads=2, hidden=32, intermediate=64, vision_layers=1, vision_hidden=16, vision_heads=2)
SHORT = TrainConfig(steps=3, batch_size=4, eval_every=2, eval_size=8, warmup=1)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = train(tmp_path / "a", SHORT, TINY, log=lambda *_: None)
    b = train(tmp_path / "b", SHORT, TINY, log=lambda *_: None)
    c = train(tmp_path / "c", TrainConfig(**{**SHORT.__dict__, "seed": 1}), TINY, log=lambda *_: None)
    assert a["weights_sha256"] == b["weights_sha256"] != c["weights_sha256"]
    card = (tmp_path / "a" / "README.md").read_text()
    assert "Held-out accuracy" in card and a["weights_sha256"][:16] in card
    assert {"config.json", "model.safetensors", "tokenizer.json", "training.json"} <= {p.name for p in (tmp_path / "a").iterdir()}
