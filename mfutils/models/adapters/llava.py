"""LLaVA-1.5 (``llava-hf/llava-1.5-*-hf``) and both model organisms (LLaVAs built here)."""

from __future__ import annotations

from mfutils.models.adapters.base import Adapter, register


@register
class LlavaAdapter(Adapter):
    family = "llava-1.5"
    model_types = ("llava",)


@register
class OrganismAdapter(LlavaAdapter):
    family = "organism"

    @classmethod
    def matches(cls, config) -> bool:
        from mfutils.models.organism import ORGANISM_MARKER

        return config.model_type == "llava" and (getattr(config, "mfutils", None) or {}).get("kind") == ORGANISM_MARKER


@register
class PretrainedOrganismAdapter(LlavaAdapter):
    """SmolLM2-135M-Instruct inside a LLaVA (:mod:`mfutils.models.pretrained_organism`)."""

    family = "pretrained-organism"

    @classmethod
    def matches(cls, config) -> bool:
        from mfutils.models.pretrained_organism import PRETRAINED_MARKER

        return config.model_type == "llava" and (getattr(config, "mfutils", None) or {}).get("kind") == PRETRAINED_MARKER
