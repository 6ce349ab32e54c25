"""How many rows of a batch fit in the accelerator's memory: one formula for the runner's batch
cap, the tiled head scoring and the GPU page's estimates.

Activation sizes are estimates, not measurements (they ignore allocator slack and kernel
workspaces; :data:`HEADROOM` covers those):

- a gradient pass keeps every layer's activations, Korthikanti et al. (2022)'s per-layer
  ``s·h·(34 + 5·a·s/h)`` bytes per row at 16-bit (``s`` tokens, width ``h``, ``a`` heads);
- a gradient pass with checkpointed layers (:func:`checkpointed_layers`, chapters 04-05's head
  attribution on a GPU) keeps each layer's input, ``s·h`` values, and one layer's activations
  while the backward pass recomputes it;
- a forward pass without gradients keeps about two layers' worth at a time.

On the CPU nothing is capped: the chapters' CPU batch sizes are small, and system memory is not
what a GPU user runs out of.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch.utils.checkpoint import checkpoint

from mfutils.models.cards import CARDS, TEXT_TOKENS

#: share of the free memory a batch may take (the rest: allocator fragmentation, workspaces)
HEADROOM = 0.7
#: chapters whose scorers take gradients through every layer (01's saliency, 04/05's attribution)
GRADIENT_CHAPTERS = ("01_shallow_routing", "04_sparse_heads", "05_causal_interventions")
#: chapters whose gradient passes checkpoint every decoder layer on a GPU: the head attribution
#: reads its gradient at one scalar per head, which a recomputed layer delivers as well.
#: Chapter 01's saliency reads the gradient of every layer's attention map, the tensor
#: checkpointing would discard, so it keeps every layer's activations
CHECKPOINTED_CHAPTERS = ("04_sparse_heads", "05_causal_interventions")


def takes_gradients(chapter: str, params: dict) -> bool:
    """Whether ``chapter`` with ``params`` runs a gradient pass (chapter 01 only with its saliency)."""
    return chapter in GRADIENT_CHAPTERS and bool(params.get("saliency", True))


def checkpoints(chapter: str, device_type: str = "cuda") -> bool:
    """Whether ``chapter``'s gradient passes checkpoint their layers on ``device_type`` (only on
    a GPU: on the CPU memory is not what runs out, and the recomputation costs a forward pass)."""
    return device_type == "cuda" and chapter in CHECKPOINTED_CHAPTERS


@contextmanager
def checkpointed_layers(adapter, enabled: bool = True):
    """Within the block, every decoder layer of ``adapter``'s language model recomputes its
    activations during the backward pass instead of keeping them (transformers' own
    ``GradientCheckpointingLayer``, non-reentrant ``torch.utils.checkpoint``). Forward results
    and gradients are unchanged; the layers' flags are restored on exit, also on error.

    transformers checkpoints a layer only when the layer itself is in training mode; only each
    layer module's own flag is set, so its attention and MLP stay in eval mode (no dropout).
    """
    if not enabled:
        yield
        return
    saved = [(layer, layer.training, layer.__dict__.get("gradient_checkpointing"),
              layer.__dict__.get("_gradient_checkpointing_func")) for layer in adapter.layers]
    try:
        for layer, *_ in saved:
            if not hasattr(type(layer), "gradient_checkpointing"):
                raise TypeError(f"{type(layer).__name__} is not a transformers GradientCheckpointingLayer")
            layer.gradient_checkpointing = True
            layer._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)
            layer.training = True  # the module's own flag only (Module.train() would recurse)
        yield
    finally:
        for layer, training, flag, func in saved:
            layer.training = training
            for name, value in (("gradient_checkpointing", flag), ("_gradient_checkpointing_func", func)):
                if value is None:
                    layer.__dict__.pop(name, None)
                else:
                    setattr(layer, name, value)


@dataclass(frozen=True)
class Shape:
    """What the activation formula needs of a language model."""

    n_layers: int
    hidden: int
    n_heads: int

    @classmethod
    def of(cls, config) -> "Shape":
        return cls(config.num_hidden_layers, config.hidden_size, config.num_attention_heads)


def layer_bytes_per_row(shape: Shape, seq_len: int, dtype_bytes: int = 2) -> float:
    """Activation bytes of one decoder layer for one row of ``seq_len`` tokens (Korthikanti's
    formula, written for 16-bit activations; scaled for others)."""
    s, h, a = seq_len, shape.hidden, shape.n_heads
    return s * h * (34 + 5 * a * s / h) * dtype_bytes / 2


def row_bytes(shape: Shape, seq_len: int, dtype_bytes: int = 2, gradient: bool = False,
              checkpointed: bool = False) -> float:
    """Peak activation bytes per batch row: every layer's with a gradient; with checkpointed
    layers each layer's input plus one layer's activations (recomputed in the backward pass)
    and two layers' worth of headroom; two layers' without a gradient."""
    one = layer_bytes_per_row(shape, seq_len, dtype_bytes)
    if gradient and checkpointed:
        return shape.n_layers * seq_len * shape.hidden * dtype_bytes + 2 * one
    return one * (shape.n_layers if gradient else 2)


def rows_that_fit(free_bytes: float, per_row: float, want: int) -> int:
    """The most rows, at most ``want`` and at least one, whose activations take no more than
    :data:`HEADROOM` of ``free_bytes``."""
    return max(1, min(want, int(HEADROOM * free_bytes // max(per_row, 1.0))))


def free_bytes(device: torch.device) -> int | None:
    """Free accelerator memory on ``device``; None on the CPU (nothing is capped there)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


#: a typical prompt length when nothing better is known (LLaVA-1.5's 576 image tokens + text)
DEFAULT_SEQ_LEN = 700


def typical_seq_len(model_id: str) -> int:
    """Image tokens + the paper's text for a known checkpoint (:data:`mfutils.models.cards.CARDS`),
    else :data:`DEFAULT_SEQ_LEN`."""
    card = next((c for c in CARDS if c.model_id == model_id), None)
    return card.image_tokens + TEXT_TOKENS if card else DEFAULT_SEQ_LEN


def cap_batch(bundle, batch_size: int, gradient: bool, checkpointed: bool = False) -> tuple[int, str | None]:
    """``(batch size to run, message)``: ``batch_size``, or fewer rows where the visible GPU
    memory would not hold it (the message says what was chosen and why; None when unchanged).

    ``gradient``: whether the run takes gradients (:func:`takes_gradients`); ``checkpointed``:
    whether they recompute the layers (:func:`checkpoints`).
    """
    free = free_bytes(bundle.device)
    if free is None:
        return batch_size, None
    shape = Shape.of(bundle.adapter.language_model.config)
    seq = typical_seq_len(bundle.model_id)
    per_row = row_bytes(shape, seq, torch.finfo(bundle.dtype).bits // 8, gradient, checkpointed)
    fit = rows_that_fit(free, per_row, batch_size)
    if fit == batch_size:
        return batch_size, None
    return fit, (f"batch size {batch_size} -> {fit}: {free / 2**30:.1f} GiB free after loading, "
                 f"~{per_row / 2**30:.2f} GiB per row at ~{seq} tokens ("
                 + ("with checkpointed gradients" if gradient and checkpointed else "with gradients" if gradient
                    else "without gradients") + "; estimate, mfutils.engine.memory)")


#: rows one tiled pass may hold on the CPU: larger matrices gain nothing there and leave the
#: caches (measured with `make bench`: 64 rows x 8 heads took 19% longer than one head per pass
#: on the tiny organism; 4 rows x 9 heads 12% less on the pretrained one)
CPU_ROWS = 64


def heads_per_pass(bundle, batch_rows: int, seq_len: int) -> int:
    """How many heads of a layer one tiled ablation pass may take: each head adds
    ``batch_rows`` forward rows without gradients. On a GPU as many as its free memory holds;
    on the CPU up to :data:`CPU_ROWS` rows."""
    n_heads = bundle.adapter.n_heads
    free = free_bytes(bundle.device)
    if free is None:
        return max(1, min(n_heads, CPU_ROWS // max(batch_rows, 1)))
    shape = Shape.of(bundle.adapter.language_model.config)
    per_head = batch_rows * row_bytes(shape, seq_len, torch.finfo(bundle.dtype).bits // 8, gradient=False)
    return rows_that_fit(free, per_head, n_heads)
