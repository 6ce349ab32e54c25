"""Shared fixtures: a tiny random-weight organism (fast) and the shipped organism (slow)."""

from __future__ import annotations

import warnings

import pytest
import torch

warnings.filterwarnings("ignore", message=".*requires torchvision.*")


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tiny_bundle():
    """A randomly initialised organism-shaped model (2 layers), built from configs, not loaded."""
    from mfutils.models.adapters import adapter_for
    from mfutils.engine.interventions.attention import MF_ATTENTION, register_attention
    from mfutils.models.loading import ModelBundle
    from mfutils.models.organism import OrganismConfig, build_model, build_processor

    torch.manual_seed(0)
    arch = OrganismConfig(n_layers=2, n_heads=4, hidden=32, intermediate=64, vision_layers=1, vision_hidden=32)
    processor = build_processor(arch)
    model = build_model(processor, arch)
    register_attention()
    model.set_attn_implementation(MF_ATTENTION)
    model.eval()
    return ModelBundle(model, processor, adapter_for(model), "tiny", torch.device("cpu"), torch.float32)


@pytest.fixture(scope="session")
def organism():
    """The shipped, trained organism."""
    from mfutils.models.loading import load_model

    return load_model("organism")


#: a short deterministic training of the pretrained organism: the tests need its real base
#: weights and a set of trained parts, not a trained behaviour (none ships yet; see README)
SHORT_PRETRAINED = dict(steps=2, eval_every=100, eval_size=4, final_eval_size=8, vision_pretrain_steps=2,
                        align_steps=2, micro_batches=1, batch_size=4, threads=2, text_steps=1)


@pytest.fixture(scope="session")
def pretrained_parts(tmp_path_factory):
    """``(folder, training record)`` of a short training's parts, and ``pretrained_dir`` /
    ``cache_root`` pointed at temporary folders for the session, so that the pretrained
    organism loads through :func:`mfutils.models.loading.load_model` exactly as the book loads it."""
    from mfutils.models import pretrained_organism as po
    from mfutils.models.train_pretrained import PretrainedTrainConfig, train

    root = tmp_path_factory.mktemp("pretrained")
    mp = pytest.MonkeyPatch()
    _point_parts(mp, po.PRETRAINED_ID, root / "parts")
    mp.setattr(po, "cache_root", lambda: root / "cache")
    rec = train(root / "parts", PretrainedTrainConfig(**SHORT_PRETRAINED), log=lambda *_: None)
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(1)
    yield root / "parts", rec
    mp.undo()


def _point_parts(mp: pytest.MonkeyPatch, model_id: str, folder) -> None:
    """``pretrained_dir(model_id)`` -> ``folder``; every other organism's as before."""
    from mfutils.models import pretrained_organism as po

    before = po.pretrained_dir
    mp.setattr(po, "pretrained_dir", lambda m=po.PRETRAINED_ID: folder if m == model_id else before(m))


@pytest.fixture(scope="session")
def gemma_parts(tmp_path_factory):
    """``(folder, training record)`` of a short training of the Gemma organism (real base
    weights, parts trained for a few steps), its ``pretrained_dir`` pointed there for the session;
    the merged checkpoint is cached under the parts' digest where the session's cache is."""
    from mfutils.models import pretrained_organism as po
    from mfutils.models.train_pretrained import PretrainedTrainConfig, train

    root = tmp_path_factory.mktemp("gemma")
    mp = pytest.MonkeyPatch()
    _point_parts(mp, po.GEMMA_ID, root / "parts")
    rec = train(root / "parts", PretrainedTrainConfig(**SHORT_PRETRAINED, organism=po.GEMMA_ID), log=lambda *_: None)
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(1)
    yield root / "parts", rec
    mp.undo()


@pytest.fixture(scope="session")
def pretrained(pretrained_parts):
    """The pretrained organism (SmolLM2-135M-Instruct in a LLaVA) with real base weights and the
    short training's parts; 2 threads for its 135M parameters (about 2x faster than one here,
    measured), 1 again afterwards."""
    from mfutils.models.loading import load_model

    torch.set_num_threads(2)
    yield load_model("pretrained-organism")
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def eval_items():
    from mfutils.data import synthetic

    return synthetic.make_split("eval", 24, seed=5)
