"""InternVL in its transformers-native form (``OpenGVLab/InternVL3-*-hf``)."""

from __future__ import annotations

from .base import Adapter, register


@register
class InternVLAdapter(Adapter):
    family = "internvl"
    model_types = ("internvl",)
