"""One small adapter per model family: where the decoder layers, attention, its output
projection, MLP, final norm and unembedding live; head counts (GQA-aware); image token.

Adding a family = one file here that subclasses :class:`Adapter` and calls :func:`register`,
plus one tiny-config test in ``tests/adapters``.
"""

from __future__ import annotations

from mfutils.models.adapters.base import Adapter, UnsupportedModelError, adapter_for, register, registered_families
from mfutils.models.adapters import internvl, llava, llava_next, qwen2_vl  # noqa: F401  (registration side effects

__all__ = ["Adapter", "UnsupportedModelError", "adapter_for", "register", "registered_families"]
