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


@register
class GemmaOrganismAdapter(PretrainedOrganismAdapter):
    """Gemma-3-270M inside a LLaVA (:data:`mfutils.models.pretrained_organism.GEMMA`).

    Gemma normalises each sublayer's output before adding it to the residual stream
    (``post_attention_layernorm``, ``post_feedforward_layernorm``), so what a sublayer *adds*
    is that norm's output, not the attention's or the MLP's own. Its attention alternates
    sliding-window and global layers and scales queries by ``query_pre_attn_scalar ** -0.5``:
    both reach our attention function as its mask and ``scaling`` argument, so edits need
    nothing of their own here.
    """

    family = "gemma-organism"

    def __init__(self, model):
        super().__init__(model)
        # a capped final logit (Gemma 2) would make the logit lens and every last-position
        # readout differ from the model's own logits; Gemma 3 has none
        if getattr(self.text_config, "final_logit_softcapping", None):
            raise NotImplementedError("final_logit_softcapping is not supported by the logit lens")

    @classmethod
    def matches(cls, config) -> bool:
        from mfutils.models.pretrained_organism import GEMMA

        return config.model_type == "llava" and (getattr(config, "mfutils", None) or {}).get("kind") == GEMMA.marker

    def attn_out(self, layer: int):
        return self.layers[layer].post_attention_layernorm

    def mlp_out(self, layer: int):
        return self.layers[layer].post_feedforward_layernorm
