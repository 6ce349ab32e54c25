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
    from mfutils.adapters import adapter_for
    from mfutils.interventions.attention import MF_ATTENTION, register_attention
    from mfutils.loading import ModelBundle
    from mfutils.organism import OrganismConfig, build_model, build_processor

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
    from mfutils.loading import load_model

    return load_model("organism")


@pytest.fixture(scope="session")
def eval_items():
    from mfutils import synthetic

    return synthetic.make_split("eval", 24, seed=5)
