"""The real checkpoints the GPU parameter files name: their published architecture numbers
and a COCO image's tokens (the GPU page's estimates and a GPU run's batch cap read them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelCard:
    """Published architecture numbers of one checkpoint (language model part)."""

    model_id: str
    family: str
    params_b: float  # whole checkpoint, billions
    lm_params_b: float  # language model, billions (what each token's forward pass costs)
    n_layers: int
    n_heads: int
    hidden: int
    image_tokens: int  # typical for a COCO image (dynamic-resolution families vary)


#: the checkpoints of ``notebooks/params/*.yaml``
CARDS = [
    ModelCard("llava-hf/llava-1.5-7b-hf", "llava-1.5", 7.06, 6.74, 32, 32, 4096, 576),
    ModelCard("llava-hf/llava-v1.6-mistral-7b-hf", "llava-next", 7.57, 7.24, 32, 32, 4096, 2144),
    ModelCard("Qwen/Qwen2-VL-7B-Instruct", "qwen2-vl", 8.29, 7.07, 28, 28, 3584, 391),
    ModelCard("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl", 8.29, 7.07, 28, 28, 3584, 391),
    ModelCard("OpenGVLab/InternVL3-8B-hf", "internvl", 7.94, 7.07, 28, 28, 3584, 1792),
]
#: text tokens of the paper's prompt (context, instruction, question, constraint, template)
TEXT_TOKENS = 120
