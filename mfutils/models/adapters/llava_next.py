"""LLaVA-NeXT (``llava-hf/llava-v1.6-*-hf``): any-resolution tiles, same text decoder layout."""

from __future__ import annotations

from mfutils.models.adapters.base import Adapter, register


@register
class LlavaNextAdapter(Adapter):
    family = "llava-next"
    model_types = ("llava_next",)
