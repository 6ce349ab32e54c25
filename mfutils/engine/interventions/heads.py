"""Head scaling and MLP mean-ablation through forward (pre-)hooks."""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from typing import Iterable

import torch

from mfutils.engine.interventions.attention import active_edit_count

_LIVE_HOOKS: set = set()


def active_hook_count() -> int:
    """Hooks and attention edits installed by mfutils and not yet removed (0 between uses)."""
    return len(_LIVE_HOOKS) + active_edit_count()


@contextmanager
def hooks_removed_on_exit():
    """Collects hook handles; removes every one when the block exits, also on error."""
    handles: list = []
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()
            _LIVE_HOOKS.discard(h)


def track_hook(handles: list, handle) -> None:
    """Record a hook ``handle`` in ``handles`` (removed on exit) and in the live-hook registry
    that tests read to prove no hook outlives its intervention; every hook-installing module
    registers its hooks through this."""
    handles.append(handle)
    _LIVE_HOOKS.add(handle)


@contextmanager
def scale_heads(adapter, heads: dict[tuple[int, int], float] | Iterable[tuple[int, int]], factor: float | None = None,
                positions: torch.Tensor | None = None):
    """Multiply the outputs of chosen heads by a factor (0 blocks, 1 is the identity, >1 amplifies).

    ``heads``: ``{(layer, head): factor}``, or an iterable of ``(layer, head)`` with one
    ``factor`` for all. ``positions``: optional bool ``(B, T)``: scale only at these query
    positions. Implemented as a pre-hook on each layer's ``o_proj``, whose input is the
    concatenation of per-head outputs ``(B, T, H * D)``.
    """
    if not isinstance(heads, dict):
        if factor is None:
            raise ValueError("give a factor, or a {(layer, head): factor} dict")
        heads = {lh: float(factor) for lh in heads}
    per_layer: dict[int, dict[int, float]] = defaultdict(dict)
    for (layer, head), f in heads.items():
        if not (0 <= layer < adapter.n_layers and 0 <= head < adapter.n_heads):
            raise IndexError(f"head {(layer, head)} outside {adapter.n_layers} layers x {adapter.n_heads} heads")
        per_layer[layer][head] = f
    H, D = adapter.n_heads, adapter.head_dim

    def make_hook(scales: dict[int, float]):
        def hook(module, args):
            x = args[0]
            factors = torch.ones(H, dtype=x.dtype, device=x.device)
            for h, f in scales.items():
                factors[h] = f
            y = x.view(*x.shape[:-1], H, D) * factors[:, None]
            y = y.view_as(x)
            if positions is not None:
                y = torch.where(positions.to(x.device)[..., None], y, x)
            return (y,) + tuple(args[1:])

        return hook

    with hooks_removed_on_exit() as handles:
        for layer, scales in per_layer.items():
            track_hook(handles, adapter.o_proj(layer).register_forward_pre_hook(make_hook(scales)))
        yield


@contextmanager
def zero_head_per_row(adapter, layer: int, heads: torch.Tensor):
    """Zero one head of ``layer`` per batch row: row ``r`` loses head ``heads[r]`` (``-1``: none).

    ``heads``: long ``(B,)``. Lets one pass over a batch tiled ``k`` times ablate ``k`` heads
    at once (exhaustive head scoring). A pre-hook on the layer's ``o_proj`` as in
    :func:`scale_heads`, whose input is ``(B, T, H * D)``.
    """
    if not 0 <= layer < adapter.n_layers:
        raise IndexError(f"layer {layer} outside {adapter.n_layers} layers")
    if int(heads.max()) >= adapter.n_heads or int(heads.min()) < -1:
        raise IndexError(f"head indices must lie in -1..{adapter.n_heads - 1}")
    H, D = adapter.n_heads, adapter.head_dim

    def hook(module, args):
        x = args[0]
        if x.shape[0] != heads.shape[0]:
            raise ValueError(f"zero_head_per_row got {heads.shape[0]} rows for a batch of {x.shape[0]}")
        keep = torch.ones(x.shape[0], H, dtype=x.dtype, device=x.device)
        rows = torch.nonzero(heads >= 0)[:, 0]
        keep[rows.to(x.device), heads[rows].to(x.device)] = 0
        y = (x.view(*x.shape[:-1], H, D) * keep.view(x.shape[0], *([1] * (x.dim() - 2)), H, 1)).view_as(x)
        return (y,) + tuple(args[1:])

    with hooks_removed_on_exit() as handles:
        track_hook(handles, adapter.o_proj(layer).register_forward_pre_hook(hook))
        yield


@contextmanager
def mean_ablate_mlps(adapter, means: dict[int, torch.Tensor]):
    """Replace the output of MLP ``layer`` by ``means[layer]`` (``(d_model,)``) at every position."""
    def make_hook(mean):
        def hook(module, args, output):
            return mean.to(output.dtype).expand_as(output).clone()

        return hook

    with hooks_removed_on_exit() as handles:
        for layer, mean in means.items():
            track_hook(handles, adapter.mlp_out(layer).register_forward_hook(make_hook(mean)))
        yield
