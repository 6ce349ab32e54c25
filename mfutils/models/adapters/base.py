"""The adapter interface and the family registry."""

from __future__ import annotations


import torch
from torch import nn


class UnsupportedModelError(ValueError):
    """A model whose family has no adapter."""


class Adapter:
    """Uniform access to one multimodal decoder's internals.

    Subclasses only override what differs; transformers 5 puts every supported family's text
    decoder at ``model.model.language_model`` and its unembedding at ``model.lm_head``.
    """

    family: str = "base"
    model_types: tuple[str, ...] = ()

    def __init__(self, model: nn.Module):
        self.model = model

    @classmethod
    def matches(cls, config) -> bool:
        return config.model_type in cls.model_types

    # -- structure ------------------------------------------------------------------
    @property
    def language_model(self) -> nn.Module:
        return self.model.model.language_model

    @property
    def layers(self) -> nn.ModuleList:
        return self.language_model.layers

    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return self.text_config.num_attention_heads

    @property
    def n_kv_heads(self) -> int:
        return getattr(self.text_config, "num_key_value_heads", None) or self.n_heads

    @property
    def head_dim(self) -> int:
        return getattr(self.text_config, "head_dim", None) or self.text_config.hidden_size // self.n_heads

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    def attn(self, layer: int) -> nn.Module:
        return self.layers[layer].self_attn

    def o_proj(self, layer: int) -> nn.Linear:
        return self.attn(layer).o_proj

    def mlp(self, layer: int) -> nn.Module:
        return self.layers[layer].mlp

    def attn_out(self, layer: int) -> nn.Module:
        """The module whose output is what layer ``layer``'s attention adds to the residual
        stream (the attention itself, unless a family normalises it first)."""
        return self.attn(layer)

    def mlp_out(self, layer: int) -> nn.Module:
        """The module whose output is what layer ``layer``'s MLP adds to the residual stream."""
        return self.mlp(layer)

    @property
    def final_norm(self) -> nn.Module:
        return self.language_model.norm

    @property
    def unembed(self) -> nn.Linear:
        return self.model.lm_head

    @property
    def image_token_id(self) -> int:
        cfg = self.model.config
        for name in ("image_token_id", "image_token_index"):
            value = getattr(cfg, name, None)
            if value is not None:
                return int(value)
        raise AttributeError(f"{self.family}: config has no image token id")

    def wrapper_token_ids(self, processor) -> set[int]:
        """Tokens the processor adds around image tokens that the chat template does not write."""
        return set()

    # -- readout ------------------------------------------------------------------------
    def lens(self, resid: torch.Tensor) -> torch.Tensor:
        """Logit lens: ``(..., d_model)`` residual -> ``(..., vocab)`` logits via final norm + unembedding."""
        return self.unembed(self.final_norm(resid))

    def lens_at(self, resid: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
        """:meth:`lens` for ``token_ids`` only: ``(..., d_model)`` -> ``(..., len(token_ids))``.

        The answers' few rows of the unembedding instead of all of them: at every token of a
        group and every layer, the full vocabulary (49,152 on SmolLM2) cost more than the
        model's forward pass. Equal to the full lens's columns within float rounding."""
        rows = torch.as_tensor(token_ids, device=self.unembed.weight.device)
        bias = self.unembed.bias[rows] if self.unembed.bias is not None else None
        return torch.nn.functional.linear(self.final_norm(resid), self.unembed.weight[rows], bias)

    def describe(self) -> dict:
        return {
            "family": self.family,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "total_heads": self.n_layers * self.n_heads,
        }


_REGISTRY: list[type[Adapter]] = []


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make ``cls`` available to :func:`adapter_for` (later ones win)."""
    _REGISTRY.insert(0, cls)
    return cls


def registered_families() -> list[str]:
    return sorted({c.family for c in _REGISTRY})


def adapter_for(model: nn.Module) -> Adapter:
    """The adapter for ``model``, or :class:`UnsupportedModelError` naming the supported families."""
    for cls in _REGISTRY:
        if cls.matches(model.config):
            return cls(model)
    raise UnsupportedModelError(
        f"no adapter for model_type {model.config.model_type!r}; supported families: "
        f"{', '.join(registered_families())}. Add one in mfutils/models/adapters/."
    )

