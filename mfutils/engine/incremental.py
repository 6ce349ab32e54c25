"""Incremental recomputation: run an edit only where it can change something.

An edit that starts at layer ``l0`` and touches only queries at positions ``>= s`` (a knockout
whose target group starts at ``s``) leaves every layer below ``l0`` unchanged, and every
position before ``s`` unchanged at every layer (causal attention: those positions never see
the edited rows). So after one clean pass that caches

- the residual stream entering each layer, at every position, and
- the keys and values of every layer,

the edited answer needs only positions ``s..T-1`` through layers ``l0..L-1``, attending to the
cached keys and values of positions ``< s``. For the last position alone that is one token's
path through the upper layers. Samples of a batch differ in length and in where their target
group starts, so knockouts run each sample from its own ``s`` to its own last token
(:func:`own_suffix_logits`), not the whole batch from its earliest ``s`` to its padded end.
Head ablation at layer ``l`` changes every position from ``l`` on, so it runs all positions
(``s = 0``) but only from layer ``l``.

How, without copying any forward: the language model's own ``forward`` runs on
``inputs_embeds`` = the cached residual entering ``l0`` at the suffix positions, with a
transformers ``DynamicCache`` holding the prefix's clean keys/values, the clean run's own
position ids (sliced; Qwen2-VL's 3-D rotary ids included) and attention mask, and the
decoder-layer list temporarily cut to ``layers[l0:]`` (each attention module keeps its own
``layer_idx``, so it reads and writes its own cache layer). Edits (knockouts through
``AttentionInterface``, head scaling through ``o_proj`` pre-hooks) act as in a full pass.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from mfutils.engine.interventions import capture
from mfutils.engine.interventions.heads import track_hook, hooks_removed_on_exit
from mfutils.engine.metrics import unembed_last


@dataclass
class CleanRun:
    """What one clean forward pass of a batch leaves for its edits.

    ``resid``: per layer ``(B, T, d)`` residual entering it; ``keys``/``values``: per layer
    ``(B, H_kv, T, D)``; ``lm_kwargs``: the keyword arguments the model passed to its
    language model (position ids, attention mask); ``logits``: ``(B, V)`` at each sample's
    last position; ``lengths``: ``(B,)``.
    """

    resid: list[torch.Tensor]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    lm_kwargs: dict
    logits: torch.Tensor
    lengths: torch.Tensor

    @property
    def seq_len(self) -> int:
        return self.resid[0].shape[1]


def _cache_kwarg(module: nn.Module) -> str:
    """The cache argument's name: ``cache`` in recent transformers, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


@torch.no_grad()
def clean_run(bundle, batch) -> CleanRun:
    """One clean forward pass that caches residuals, keys/values and the language model's inputs."""
    ad = bundle.adapter
    lm = ad.language_model
    T = batch.inputs["input_ids"].shape[1]
    seen: dict = {}

    def record(module, args, kwargs):
        seen.update({k: kwargs[k] for k in ("position_ids", "attention_mask") if k in kwargs})

    every = torch.arange(T, device=bundle.device)[None].expand(len(batch.lengths), -1)
    extra = {_cache_kwarg(bundle.model.model): _new_cache(lm)} if _sliding(lm) else {}
    with hooks_removed_on_exit() as handles, capture(ad, every, points=("resid_pre",)) as store:
        track_hook(handles, lm.register_forward_pre_hook(record, with_kwargs=True))
        # the base model, not the ...ForConditionalGeneration around it: only the last
        # positions are unembedded (as in mfutils.engine.metrics.forward_last_logits), not B x T rows
        out = bundle.model.model(**batch.inputs, use_cache=True, **extra)
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    keys = [cache.layers[l].keys for l in range(ad.n_layers)]
    values = [cache.layers[l].values for l in range(ad.n_layers)]
    return CleanRun([store["resid_pre"][l] for l in range(ad.n_layers)], keys, values, seen,
                    unembed_last(bundle.model, out[0], batch.lengths), batch.lengths)


def _sliding(lm: nn.Module) -> bool:
    """Whether some of ``lm``'s layers attend within a sliding window (Gemma 3)."""
    return "sliding_attention" in (getattr(lm.config, "layer_types", None) or ())


def _new_cache(lm: nn.Module):
    """An empty key/value cache for an incremental run.

    A cache built from a sliding-window model's config keeps only the window's last keys in
    those layers; ours must hold every position (a suffix's queries are checked against the
    window by the mask), so such a model gets plain per-layer caches.
    """
    from transformers import DynamicCache

    return DynamicCache() if _sliding(lm) else DynamicCache(config=lm.config)


def _own_suffix_masks(lm: nn.Module, positions: torch.Tensor, key_ok: torch.Tensor, prefix: int) -> dict:
    """``layer type -> bool (B, 1, S, P + S)`` "may attend" masks of :func:`own_suffix_logits`'
    packed layout, by true position (query ``j`` of sample ``b`` is ``positions[b, j]``, key
    ``k < P`` position ``k``, key ``P + i`` position ``positions[b, i]``): causal, and within the
    window on sliding layers. The model's own masks would compare packed indices, which differ
    from positions by each sample's gap between its start and ``P``."""
    B = positions.shape[0]
    keys = torch.cat([torch.arange(prefix, device=positions.device)[None].expand(B, -1), positions], dim=1)
    q, k = positions[:, :, None], keys[:, None, :]
    full = key_ok[:, None, :] & (k <= q)
    window = lm.config.sliding_window
    return {"full_attention": full[:, None], "sliding_attention": (full & (q - k < window))[:, None]}


@contextmanager
def _layers_from(lm: nn.Module, first: int):
    """The language model with its decoder layers cut to ``layers[first:]`` (restored on exit).

    A model that mixes attention types (Gemma 3: sliding-window and global layers) looks up
    layer ``i``'s mask and rotary table by ``config.layer_types[i]``, ``i`` counting the layers
    it runs: the list is cut with them, or the cut layers would read their predecessors' types.
    """
    full = lm.layers
    types = getattr(lm.config, "layer_types", None)
    try:
        lm.layers = nn.ModuleList(list(full)[first:])
        if types is not None:
            lm.config.layer_types = list(types)[first:]
        yield
    finally:
        lm.layers = full
        if types is not None:
            lm.config.layer_types = types


def _tile(x: torch.Tensor, k: int, dim: int = 0) -> torch.Tensor:
    """``x`` repeated ``k`` times along its batch dimension ``dim``: copy ``j`` of sample ``b``
    is row ``j * B + b``."""
    return x if k == 1 else x.repeat(*[k if d == dim else 1 for d in range(x.dim())])


def suffix_logits(bundle, clean: CleanRun, first_layer: int, start: int, tiles: int = 1) -> torch.Tensor:
    """``(tiles * B, V)`` last-position logits with positions ``start..T-1`` recomputed through
    layers ``first_layer..L-1`` under whatever edits are active, every other state taken from
    ``clean``.

    Equals a full forward pass under the same edits (within float tolerance) provided the edits
    touch no layer below ``first_layer`` and no query position below ``start``. ``tiles``: the
    batch runs ``tiles`` times in one pass (row ``j * B + b`` is copy ``j`` of sample ``b``), so
    that edits that differ per row (:func:`mfutils.engine.interventions.zero_head_per_row`) share it.
    """
    ad = bundle.adapter
    lm = ad.language_model
    if not 0 <= start <= int(clean.lengths.min()) - 1:
        raise ValueError(f"start {start} must lie before every sample's last position")
    cache = _new_cache(lm)
    for layer in range(ad.n_layers):
        cache.update(_tile(clean.keys[layer][..., :start, :], tiles), _tile(clean.values[layer][..., :start, :], tiles), layer)
    kwargs = {"inputs_embeds": _tile(clean.resid[first_layer][:, start:], tiles), "use_cache": True,
              _cache_kwarg(lm): cache}
    if "attention_mask" in clean.lm_kwargs:
        kwargs["attention_mask"] = _tile(clean.lm_kwargs["attention_mask"], tiles)
    if clean.lm_kwargs.get("position_ids") is not None:
        pos = clean.lm_kwargs["position_ids"][..., start:]
        # Qwen2-VL's rotary ids are (sections, B, T); every other family's (B, T)
        kwargs["position_ids"] = _tile(pos, tiles, dim=1 if pos.dim() == 3 else 0)
    with torch.no_grad(), _layers_from(lm, first_layer):
        hidden = lm(**kwargs).last_hidden_state  # (tiles * B, T - start, d), after the final norm
    lengths = _tile(clean.lengths.to(hidden.device), tiles)
    last = (lengths - 1 - start)[:, None, None].expand(-1, 1, hidden.shape[-1])
    return ad.unembed(hidden.gather(1, last)[:, 0])


def own_starts(spans, lengths: torch.Tensor, target: str) -> torch.Tensor:
    """``(B,)`` each sample's own first position in group ``target`` (its last position where the
    group is absent or starts after it): where an edit of that group's queries starts changing
    that sample's states."""
    return torch.tensor([min(min(sp[target]) if sp[target] else 10**9, int(n) - 1) for sp, n in zip(spans, lengths)])


def _own_suffix(clean: CleanRun, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """``(positions (B, S), valid (B, S), P, S)``: sample ``b``'s suffix positions
    ``starts[b]..lengths[b]-1`` packed to the left of ``S`` columns (padding repeats the last
    position), and the prefix width ``P = max(starts)`` its cache needs."""
    lengths = clean.lengths.to(starts.device)
    if bool((starts < 0).any()) or bool((starts > lengths - 1).any()):
        raise ValueError("every start must lie between 0 and its sample's last position")
    width = int((lengths - starts).max())
    j = torch.arange(width, device=starts.device)[None]
    valid = j < (lengths - starts)[:, None]
    positions = torch.minimum(starts[:, None] + j, (lengths - 1)[:, None])
    return positions, valid, int(starts.max()), width


def own_block(block: torch.Tensor, clean: CleanRun, starts: torch.Tensor) -> torch.Tensor:
    """A knockout ``block`` ``(B, 1, T, T)`` in the key/query order of :func:`own_suffix_logits`:
    ``(B, 1, S, P + S)``, query ``j`` of sample ``b`` being position ``starts[b] + j``, key
    ``k < P`` position ``k`` and key ``P + i`` position ``starts[b] + i``."""
    positions, _, prefix, width = _own_suffix(clean, starts)
    B, T = block.shape[0], block.shape[-1]
    rows = block[:, 0].gather(1, positions[:, :, None].expand(-1, -1, T))  # (B, S, T)
    keys = torch.cat([torch.arange(prefix)[None].expand(B, -1), positions], dim=1)  # (B, P + S)
    return rows.gather(2, keys[:, None, :].expand(-1, width, -1))[:, None]


def own_suffix_logits(bundle, clean: CleanRun, first_layer: int, starts: torch.Tensor) -> torch.Tensor:
    """``(B, V)`` last-position logits with each sample's own positions ``starts[b]..`` (to its
    last token) recomputed through layers ``first_layer..L-1``, every other state from ``clean``.

    Like :func:`suffix_logits`, but without the batch's shared start and its right padding: a
    knockout into the last position recomputes one token per sample. The suffixes are packed
    to the left; sample ``b``'s cache holds its clean keys/values of positions ``< starts[b]``
    (the prefix slots past them are masked out), the suffix follows it with the clean run's own
    position ids. Knockouts must pass their block through :func:`own_block`.
    """
    ad = bundle.adapter
    lm = ad.language_model
    starts = starts.to(clean.lengths.device)
    positions, valid, prefix, width = _own_suffix(clean, starts)
    cache = _new_cache(lm)
    for layer in range(ad.n_layers):
        cache.update(clean.keys[layer][..., :prefix, :], clean.values[layer][..., :prefix, :], layer)
    resid = clean.resid[first_layer]
    dev = resid.device
    positions, valid = positions.to(dev), valid.to(dev)
    embeds = resid.gather(1, positions[..., None].expand(-1, -1, resid.shape[-1]))
    in_prefix = torch.arange(prefix, device=dev)[None] < starts.to(dev)[:, None]
    key_ok = torch.cat([in_prefix, valid], dim=1)
    kwargs = {"inputs_embeds": embeds, "use_cache": True, _cache_kwarg(lm): cache, "attention_mask": key_ok.long()}
    if _sliding(lm):
        kwargs["attention_mask"] = _own_suffix_masks(lm, positions, key_ok, prefix)
    pos = clean.lm_kwargs.get("position_ids")
    if pos is None:
        kwargs["position_ids"] = positions
    elif pos.dim() == 3:  # Qwen2-VL's rotary ids, (sections, B, T)
        kwargs["position_ids"] = pos.gather(2, positions[None].expand(pos.shape[0], -1, -1))
    else:
        kwargs["position_ids"] = pos.gather(1, positions)
    with torch.no_grad(), _layers_from(lm, first_layer):
        hidden = lm(**kwargs).last_hidden_state  # (B, S, d), after the final norm
    last = (clean.lengths.to(dev) - 1 - starts.to(dev))[:, None, None].expand(-1, 1, hidden.shape[-1])
    return ad.unembed(hidden.gather(1, last)[:, 0])


def mean_layer_share(n_layers: int) -> float:
    """Average share of a pass an edit rerun from its own layer costs, over the ``n_layers``
    layers it may start at (all positions): ``(L + 1) / (2 L)``."""
    return (n_layers + 1) / (2 * n_layers)


def forward_share(n_layers: int, seq_len: int, first_layer: int, start: int) -> float:
    """Share of a full forward pass's token-layer work an incremental run does."""
    return (n_layers - first_layer) * (seq_len - start) / (n_layers * seq_len)
