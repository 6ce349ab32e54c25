"""Estimated GPU memory and run time of each chapter on the supported 7B-class models.

Estimates, not measurements: parameter counts and architecture numbers are the published
ones of each checkpoint; passes per sample follow the chapters' code (the same formulas the
chapters count); the throughput is an assumption stated in :data:`ASSUMED_TFLOPS`. The GPU
page labels every number here as an estimate until a run measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

#: effective bf16 throughput assumed for an H100-class GPU running batched inference with
#: eager attention hooks (well below peak on purpose)
ASSUMED_TFLOPS = 150.0
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


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


CARDS = [
    ModelCard("llava-hf/llava-1.5-7b-hf", "llava-1.5", 7.06, 6.74, 32, 32, 4096, 576),
    ModelCard("llava-hf/llava-v1.6-mistral-7b-hf", "llava-next", 7.57, 7.24, 32, 32, 4096, 2144),
    ModelCard("Qwen/Qwen2-VL-7B-Instruct", "qwen2-vl", 8.29, 7.07, 28, 28, 3584, 391),
    ModelCard("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl", 8.29, 7.07, 28, 28, 3584, 391),
    ModelCard("OpenGVLab/InternVL3-8B-hf", "internvl", 7.94, 7.07, 28, 28, 3584, 1792),
]
#: text tokens of the paper's prompt (context, instruction, question, constraint, template)
TEXT_TOKENS = 120


def passes_per_sample(chapter: str, n_layers: int, total_heads: int, params: dict) -> float:
    """Forward-pass equivalents per conflict sample (a backward pass counts as two), as the
    chapter's code runs them with ``params`` (a chapter's parameters; defaults if absent)."""
    controls = 2  # the per-model filter reads each conflict's image-only and text-only versions
    if chapter == "00_behaviour":
        # plus the unseen-phrasing table: 24 sentences x n/8 conflicts = 1.5 passes per sample
        return 1 + controls + 1.5
    if chapter == "01_shallow_routing":
        from .routing import CONTROL_EDGES, FIGURE2_EDGES, FIGURE3_EDGES, LAYOUT_FIGURES, POSITION_EDGES

        edges = len(set(FIGURE2_EDGES + FIGURE3_EDGES + CONTROL_EDGES))
        layout_edges = len(POSITION_EDGES)
        p = 1 + edges * n_layers
        if params.get("layout_controls", True):
            p += len(LAYOUT_FIGURES) * (1 + layout_edges * n_layers)
        if params.get("saliency", True):
            p += 3
        return p + controls
    if chapter == "02_deep_arbitration":
        # lens at the last position and at every instruction token; target probe fit + test;
        # decision probe fit states
        return 2 + 2 + 1 + controls
    if chapter == "03_mlp_inertia":
        # the failure pool adds 4x as many held-out-paraphrase conflicts (each with its two
        # filter controls), traced, mean-ablation fit, clean and ablated runs
        return (1 + 4) * (1 + controls + 2) + 1
    if chapter in ("04_sparse_heads", "05_causal_interventions"):
        from .head_scores import BACKWARD_COST, fast_passes

        # per sample: its conflict and its matched control are each scored by the fast scorer,
        # plain attribution and the direct score, and by exhaustive ablation when asked
        one = fast_passes(total_heads, params.get("top_fraction", 0.05)) + (1 + BACKWARD_COST) + 1
        scoring = 2 * (one + ((1 + total_heads) if params.get("exhaustive", True) else 0))
        if chapter == "04_sparse_heads":
            return scoring + controls
        from .causal import ALPHAS, FRACTIONS

        fractions, n_random, alphas = len(FRACTIONS), params.get("n_random", 20), len(ALPHAS)
        blocking = (1 + fractions * (1 + n_random)) * 2  # conflicts and their controls
        # amplification runs over the failure pool (the conflicts plus 4x held-out paraphrases)
        return scoring + blocking + (1 + 4) * (alphas + 1 + controls) + controls
    raise ValueError(f"unknown chapter {chapter!r}")


def estimate(card: ModelCard, chapter: str, n_samples: int, batch_size: int, dtype: str = "bfloat16",
             params: dict | None = None) -> dict:
    """Peak GPU memory (GiB) and run time (minutes) of one chapter on ``card``.

    Memory: the weights, plus the activations of one batch. Chapters with a backward pass
    (01's saliency, 04/05's attribution) keep every layer's activations, estimated with
    Korthikanti et al. (2022)'s per-layer formula s·b·h·(34 + 5·a·s/h) bytes; forward-only
    chapters keep about one layer's worth plus the attention matrix of the hooked layer.
    """
    params = params or {}
    t = card.image_tokens + TEXT_TOKENS
    b = BYTES[dtype]
    weights = card.params_b * 1e9 * b
    backward = chapter in ("04_sparse_heads", "05_causal_interventions") or (
        chapter == "01_shallow_routing" and params.get("saliency", True))
    per_layer = t * batch_size * card.hidden * (34 + 5 * card.n_heads * t / card.hidden)
    act = per_layer * (card.n_layers if backward else 2)
    passes = passes_per_sample(chapter, card.n_layers, card.n_layers * card.n_heads, params)
    samples = 2 * n_samples  # both instruction directions
    flops = 2 * card.lm_params_b * 1e9 * t * passes * samples
    return {"model": card.model_id, "chapter": chapter, "passes per sample": passes,
            "GPU memory (GiB, est.)": round((weights + act) / 2**30 * 1.1, 1),
            "time (min, est.)": round(flops / (ASSUMED_TFLOPS * 1e12) / 60, 1)}


def estimates_table(chapters: dict[str, dict], batch_size: int = 8, dtype: str = "bfloat16") -> pd.DataFrame:
    """Every (model, chapter) estimate; ``chapters`` maps chapter -> its parameters."""
    rows = [estimate(card, ch, int(p.get("n_samples", 128)), batch_size, dtype, p)
            for card in CARDS for ch, p in chapters.items()]
    return pd.DataFrame(rows)
