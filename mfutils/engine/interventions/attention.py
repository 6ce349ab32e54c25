"""Attention edits through transformers' ``AttentionInterface``.

We register one attention function, ``mf_sdpa``, that is plain SDPA unless an edit is active
for the calling module. The matching ``AttentionMaskInterface`` entry is registered too:
without it transformers would build no causal mask for an unknown implementation name.
Edits are looked up per attention module, so knockouts in some layers leave others untouched.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Sequence

import torch
from torch import nn

MF_ATTENTION = "mf_sdpa"

# module -> bool block mask (B, 1, Q, K), True = edge removed
_KNOCKOUTS: dict[nn.Module, torch.Tensor] = {}
# module -> SaliencyRecorder
_RECORDERS: dict[nn.Module, "_SaliencyRecorder"] = {}


def _mf_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA, with the active knockout mask merged in and (optionally) saliency recorded.

    ``query``: ``(B, H, Q, D)``; ``key``/``value``: ``(B, H_kv, K, D)``.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    block = _KNOCKOUTS.get(module)
    recorder = _RECORDERS.get(module)
    if block is None and recorder is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    allowed = _allowed(attention_mask, query, key)
    if block is not None:
        allowed = allowed & ~block.to(allowed.device)
    if recorder is not None:
        return recorder.attend(module, query, key, value, allowed, **kwargs)
    return sdpa_attention_forward(module, query, key, value, allowed, **kwargs)


def _allowed(attention_mask, query, key) -> torch.Tensor:
    """The boolean ``(B|1, 1, Q, K)`` "may attend" mask equivalent to ``attention_mask``."""
    q, k = query.shape[2], key.shape[2]
    if attention_mask is None:
        causal = torch.ones(q, k, dtype=torch.bool, device=query.device).tril(diagonal=k - q)
        return causal[None, None]
    if attention_mask.dtype == torch.bool:
        return attention_mask[:, :, :, :k]
    return attention_mask[:, :, :, :k] > torch.finfo(attention_mask.dtype).min / 2


_registered = False


def register_attention() -> None:
    """Register ``mf_sdpa`` (attention and mask) with transformers; idempotent."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(MF_ATTENTION, _mf_attention)
    AttentionMaskInterface.register(MF_ATTENTION, sdpa_mask)
    _registered = True


def knockout_mask(
    spans: Sequence[dict[str, list[int]]], source: str | Iterable[str], target: str | Iterable[str], seq_len: int
) -> torch.Tensor:
    """Bool ``(B, 1, T, T)`` mask, True where a ``target`` position would attend to a ``source`` one.

    A position never loses attention to itself, so no row is ever fully masked.
    """
    sources = [source] if isinstance(source, str) else list(source)
    targets = [target] if isinstance(target, str) else list(target)
    mask = torch.zeros(len(spans), 1, seq_len, seq_len, dtype=torch.bool)
    for b, sp in enumerate(spans):
        src = sorted({p for g in sources for p in sp[g]})
        tgt = sorted({p for g in targets for p in sp[g]})
        if src and tgt:
            mask[b, 0, torch.tensor(tgt)[:, None], torch.tensor(src)[None, :]] = True
    idx = torch.arange(seq_len)
    mask[:, 0, idx, idx] = False
    return mask


@contextmanager
def knockout(adapter, layers: Iterable[int], block: torch.Tensor):
    """Within the block, attention edges where ``block`` is True are cut in ``layers``.

    Inputs: ``block`` bool ``(B, 1, T, T)`` from :func:`knockout_mask` (an all-False mask is a
    no-op). The model must have been loaded with :func:`mfutils.models.loading.load_model` (or use
    ``attn_implementation='mf_sdpa'``).
    """
    _require_mf_attention(adapter)
    modules = [adapter.attn(layer) for layer in layers]
    clash = [m for m in modules if m in _KNOCKOUTS]
    if clash:
        raise RuntimeError("nested knockouts on the same layer are not supported")
    try:
        for m in modules:
            _KNOCKOUTS[m] = block
        yield
    finally:
        for m in modules:
            _KNOCKOUTS.pop(m, None)


def _require_mf_attention(adapter) -> None:
    impl = adapter.text_config._attn_implementation
    if impl != MF_ATTENTION:
        raise RuntimeError(
            f"attention edits need attn_implementation={MF_ATTENTION!r} (got {impl!r}); "
            "load the model with mfutils.models.loading.load_model"
        )


class _SaliencyRecorder:
    """Computes attention explicitly so that |A * dL/dA| can be reduced in a tensor hook.

    ``pairs``: list of (name, target mask ``(B, T)``, source mask ``(B, T)``); the recorded
    value per pair is ``mean_{t in target, s in source} |sum_h A[h,t,s] * dL/dA[h,t,s]|``, the
    average over the pair's positions as in *Label Words are Anchors* (a sum would grow with
    the groups' sizes). Only pairs causal attention allows (``s <= t``) are counted.
    """

    def __init__(self, layer: int, pairs, store: dict):
        self.layer, self.pairs, self.store = layer, pairs, store

    def attend(self, module, query, key, value, allowed, dropout=0.0, scaling=None, **kwargs):
        from transformers.integrations.sdpa_attention import repeat_kv

        n_rep = query.shape[1] // key.shape[1]
        k, v = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        scores = (query @ k.transpose(-1, -2)) * scale
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores.float(), dim=-1).to(query.dtype)
        if weights.requires_grad:
            weights.register_hook(self._reduce(weights.detach()))
        out = (weights @ v).transpose(1, 2).contiguous()
        return out, None

    def _reduce(self, weights):
        def hook(grad):
            flow = (weights * grad).sum(1).abs()  # (B, T, T): heads summed, then |.|
            for name, tgt, src in self.pairs:
                m = (tgt[:, :, None] & src[:, None, :]).tril()
                n_pairs = m.sum((1, 2)).clamp_min(1)
                self.store.setdefault(name, {})[self.layer] = ((flow * m).sum((1, 2)) / n_pairs).detach().cpu()
            return grad

        return hook


@contextmanager
def saliency_flow(adapter, pairs, layers: Iterable[int] | None = None):
    """Record |attention x gradient| flows between token groups per layer during backward.

    Yields a dict ``{pair name: {layer: (B,) tensor}}`` filled when ``loss.backward()`` runs.
    """
    _require_mf_attention(adapter)
    layers = list(range(adapter.n_layers)) if layers is None else list(layers)
    store: dict = {}
    modules = {adapter.attn(layer): layer for layer in layers}
    try:
        for m, layer in modules.items():
            _RECORDERS[m] = _SaliencyRecorder(layer, pairs, store)
        yield store
    finally:
        for m in modules:
            _RECORDERS.pop(m, None)


def active_edit_count() -> int:
    """Number of attention edits currently installed (0 outside every context)."""
    return len(_KNOCKOUTS) + len(_RECORDERS)
