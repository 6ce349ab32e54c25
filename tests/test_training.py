"""Training is deterministic and writes a complete checkpoint with its model card."""

from __future__ import annotations

import argparse

import pytest

from mfutils.models.organism import OrganismConfig
from mfutils.models.training import TrainConfig, train

TINY = OrganismConfig(n_layers=2, n_heads=2, hidden=32, intermediate=64, vision_layers=1, vision_hidden=16, vision_heads=2)
SHORT = TrainConfig(steps=3, decay_steps=1, batch_size=4, eval_every=2, eval_size=8, warmup=1, vision_pretrain_steps=2)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = train(tmp_path / "a", SHORT, TINY, log=lambda *_: None)
    b = train(tmp_path / "b", SHORT, TINY, log=lambda *_: None)
    c = train(tmp_path / "c", TrainConfig(**{**SHORT.__dict__, "seed": 1}), TINY, log=lambda *_: None)
    assert a["weights_sha256"] == b["weights_sha256"] != c["weights_sha256"]
    card = (tmp_path / "a" / "README.md").read_text()
    assert "Held-out accuracy" in card and a["weights_sha256"][:16] in card
    assert {"config.json", "model.safetensors", "tokenizer.json", "training.json"} <= {p.name for p in (tmp_path / "a").iterdir()}


def test_micro_batches_give_the_one_pass_gradient():
    import torch

    from mfutils.data import synthetic
    from mfutils.models.organism import build_model, build_processor
    from mfutils.models.training import accumulate_gradients, seed_everything

    seed_everything(0, 1)
    processor = build_processor(TINY)
    model = build_model(processor, TINY)
    items = synthetic.make_split("train", 12, seed=0)
    grads, losses = [], []
    for parts in (1, 4):
        model.zero_grad(set_to_none=True)
        losses.append(accumulate_gradients(model, processor, items, parts))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert abs(losses[0] - losses[1]) < 1e-5
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_bad_training_mixtures_are_refused():
    import pytest

    from mfutils.models.training import parse_mix

    assert parse_mix("conflict=0.5,image_only=0.5") == {"conflict": 0.5, "image_only": 0.5}
    with pytest.raises(ValueError, match="not 1"):
        parse_mix("conflict=0.5,image_only=0.4")
    with pytest.raises(ValueError, match="conflit"):
        parse_mix("conflit=1.0")


def test_stage_two_leaves_a_frozen_tower_as_stage_one_left_it(tmp_path, monkeypatch):
    import torch

    from mfutils.models import training

    after_stage_one = {}

    def pretrain_and_remember(model, processor, items, cfg):
        pretrain(model, processor, items, cfg)
        after_stage_one.update({k: v.clone() for k, v in model.model.vision_tower.state_dict().items()})

    pretrain = training.pretrain_vision
    monkeypatch.setattr(training, "pretrain_vision", pretrain_and_remember)
    cfg = TrainConfig(**{**SHORT.__dict__, "vision_pretrain_steps": 2, "freeze_vision": True})
    train(tmp_path / "m", cfg, TINY, log=lambda *_: None)
    from transformers import LlavaForConditionalGeneration

    tower = LlavaForConditionalGeneration.from_pretrained(tmp_path / "m").model.vision_tower.state_dict()
    assert after_stage_one and all(torch.equal(tower[k], v) for k, v in after_stage_one.items())


def test_training_decays_and_stops_once_the_monitor_set_is_learnt(tmp_path):
    never = train(tmp_path / "n", TrainConfig(**{**SHORT.__dict__, "learnt_at": 1.01}), TINY, log=lambda *_: None)
    at_once = train(tmp_path / "a", TrainConfig(**{**SHORT.__dict__, "learnt_at": 0.0}), TINY, log=lambda *_: None)
    assert never["steps_run"] == SHORT.steps
    assert at_once["steps_run"] == 1 + SHORT.decay_steps
    assert [r["decay_from"] for r in at_once["curve"] if "decay_from" in r] == [1]


def test_trainer_options_read_booleans_and_refuse_nonsense():
    from mfutils.models.train_cli import _option_type

    flag = _option_type(False)
    assert flag("false") is False and flag("True") is True and flag("0") is False
    with pytest.raises(argparse.ArgumentTypeError, match="true or false"):
        flag("maybe")
    assert _option_type(3) is int and _option_type("a") is str


def test_a_value_the_config_refuses_is_a_usage_error_before_anything_loads(capsys):
    from mfutils.models import train_pretrained

    with pytest.raises(SystemExit) as exit_:
        train_pretrained.main(["--bank", "nope", "--out", "unused"])
    assert exit_.value.code == 2
    assert "unknown bank 'nope'" in capsys.readouterr().err


def test_a_retrain_that_differs_says_which_processors_trained_it(tmp_path, capsys):
    from dataclasses import dataclass

    from mfutils.models import train_cli

    @dataclass
    class Cfg:
        seed: int = 0

    shipped = {"train_config": {"seed": 0}, "architecture": {}, "digest": "a" * 64, "machine": {"python": "3.11"}}

    def run(digest, cpu):
        def train(out, cfg, arch):
            return {"digest": digest, "machine": {"cpu": cpu}}

        return train_cli.run(["--check"], prog="t", doc="", config_cls=Cfg, arch_cls=Cfg, train=train,
                             default_out=tmp_path, shipped=lambda: shipped, digest_key="digest", what="parts")

    assert run("a" * 64, "AMD EPYC") == 0 and "IDENTICAL" in capsys.readouterr().out
    assert run("b" * 64, "AMD EPYC") == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out and "a processor it did not record, this one on AMD EPYC" in out
    shipped["machine"]["cpu"] = "AMD EPYC"
    assert run("b" * 64, "AMD EPYC") == 1
    assert "both trainings ran on AMD EPYC" in capsys.readouterr().out
    # a model card names the processor, or for a record older than the field its architecture
    from mfutils.runs.machine import processor_name, training_machine

    assert processor_name(training_machine()) == training_machine()["cpu"]
    assert processor_name({"processor": "x86_64"}) == "x86_64"
