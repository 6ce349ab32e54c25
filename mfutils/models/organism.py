"""The model organism: a tiny LLaVA (CLIP vision tower + Llama text model) built from configs.

Everything here is transformers' own classes -- ``LlavaForConditionalGeneration``,
``LlavaProcessor``, a fast tokenizer -- so the organism is loaded, encoded and intervened on
through exactly the same code path as ``llava-hf/llava-1.5-7b-hf``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from mfutils.data import synthetic
from mfutils.models.tokenizer import IMAGE_TOKEN, build_tokenizer

#: Marker written into the organism's config so the loader can tell it from a real LLaVA.
ORGANISM_MARKER = "mfutils-organism"


@dataclass(frozen=True)
class OrganismConfig:
    """Architecture of the organism. 8 layers x 8 heads = 64 heads, so "5% of heads" is ~3."""

    n_layers: int = 8
    n_heads: int = 8
    hidden: int = 128
    intermediate: int = 256
    vision_layers: int = 2
    vision_hidden: int = 64
    vision_heads: int = 4
    patch_size: int = 8
    image_size: int = synthetic.IMAGE_SIZE
    # ~1/sqrt(hidden): at GPT's 0.02 a model this narrow starts with near-uniform attention
    # and its query/key weights get ~100x smaller gradients than its values (measured)
    init_std: float = 0.15


def build_processor(cfg: OrganismConfig = OrganismConfig()) -> LlavaProcessor:
    """The organism's processor: a CLIP image processor at 32 px and the word-level tokenizer."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": cfg.image_size},
        crop_size={"height": cfg.image_size, "width": cfg.image_size},
    )
    tokenizer = build_tokenizer(synthetic.vocabulary())
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=cfg.patch_size,
        vision_feature_select_strategy="default",
        chat_template=tokenizer.chat_template,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )


def build_model(processor: LlavaProcessor, cfg: OrganismConfig = OrganismConfig()) -> LlavaForConditionalGeneration:
    """A randomly initialised organism whose vocabulary matches ``processor``'s tokenizer."""
    tok = processor.tokenizer
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden,
        intermediate_size=cfg.vision_hidden * 4,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        projection_dim=cfg.vision_hidden,
        initializer_range=cfg.init_std,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden,
        intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        # tied: a token moved into the last position reads out as itself (copying is easy)
        tie_word_embeddings=True,
        initializer_range=cfg.init_std,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    config.mfutils = {"kind": ORGANISM_MARKER, "architecture": asdict(cfg)}
    return LlavaForConditionalGeneration(config)
