"""The adapter tests' shared model: each family's tiny random-weight model, and the organism."""

from __future__ import annotations

import pytest
import torch

from mfutils.models.adapters import adapter_for
from mfutils.models.loading import ModelBundle

from .tiny_families import ALL_FAMILIES, build


@pytest.fixture(scope="module", params=sorted(ALL_FAMILIES) + ["organism"])
def bundle(request, tiny_bundle):
    """Every family's tiny model, then the tiny organism (one per test module)."""
    if request.param == "organism":
        return tiny_bundle
    model, proc = build(request.param)
    return ModelBundle(model, proc, adapter_for(model), request.param, torch.device("cpu"), torch.float32)
