"""Qwen2-VL and Qwen2.5-VL (``Qwen/Qwen2-VL-*-Instruct``, ``Qwen/Qwen2.5-VL-*-Instruct``).

Both use grouped-query attention (``num_key_value_heads`` < ``num_attention_heads``) and
3-D rotary positions computed from ``image_grid_thw``; the decoder layout is the common one.
"""

from __future__ import annotations

from mfutils.models.adapters.base import Adapter, register


@register
class Qwen2VLAdapter(Adapter):
    family = "qwen2-vl"
    model_types = ("qwen2_vl",)


@register
class Qwen25VLAdapter(Adapter):
    family = "qwen2.5-vl"
    model_types = ("qwen2_5_vl",)
