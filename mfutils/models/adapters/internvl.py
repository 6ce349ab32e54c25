"""InternVL in its transformers-native form (``OpenGVLab/InternVL3-*-hf``)."""

from __future__ import annotations

from mfutils.models.adapters.base import Adapter, register


@register
class InternVLAdapter(Adapter):
    family = "internvl"
    model_types = ("internvl",)

    def wrapper_token_ids(self, processor) -> set[int]:
        # the processor expands <IMG_CONTEXT> into <img> + N x <IMG_CONTEXT> + </img>
        return {processor.start_image_token_id, processor.end_image_token_id}
