"""Capture per-layer attention output, MLP output and residual stream at chosen positions."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from mfutils.engine.interventions.heads import track_hook, hooks_removed_on_exit


def _first(x):
    return x[0] if isinstance(x, tuple) else x


@contextmanager
def capture(adapter, positions: torch.Tensor, points=("resid_pre", "attn", "mlp"), detach: bool = True,
            head_inputs: bool = False):
    """Record activations gathered at ``positions`` (``(B, P)`` long) inside the hooks.

    Yields a dict filled during the forward pass:
    - ``resid_pre[l]``: ``(B, P, d)`` residual entering layer ``l`` (``l = 0`` is the embedding);
    - ``attn[l]``, ``mlp[l]``: ``(B, P, d)`` sublayer outputs added to the residual;
    - ``resid_final``: ``(B, P, d)`` residual after the last layer, before the final norm;
    - ``head_in[l]`` (if ``head_inputs``): ``(B, P, H, D)`` per-head outputs before ``o_proj``.
    Only ``B x P`` rows are kept per layer, never full attention maps.
    """
    store: dict = {k: {} for k in points}
    store["resid_final"] = None
    if head_inputs:
        store["head_in"] = {}
    idx = positions

    def gather(x):
        g = x.gather(1, idx.to(x.device)[..., None].expand(-1, -1, x.shape[-1]))
        return g.detach() if detach else g

    with hooks_removed_on_exit() as handles:
        for layer in range(adapter.n_layers):
            block = adapter.layers[layer]
            if "resid_pre" in points:
                def pre(module, args, kwargs, layer=layer):
                    hs = args[0] if args else kwargs["hidden_states"]
                    store["resid_pre"][layer] = gather(hs)
                track_hook(handles, block.register_forward_pre_hook(pre, with_kwargs=True))
            if "attn" in points:
                def attn_hook(module, args, output, layer=layer):
                    store["attn"][layer] = gather(_first(output))
                track_hook(handles, adapter.attn_out(layer).register_forward_hook(attn_hook))
            if "mlp" in points:
                def mlp_hook(module, args, output, layer=layer):
                    store["mlp"][layer] = gather(_first(output))
                track_hook(handles, adapter.mlp_out(layer).register_forward_hook(mlp_hook))
            if head_inputs:
                def head_hook(module, args, layer=layer):
                    x = gather(args[0])
                    store["head_in"][layer] = x.view(*x.shape[:-1], adapter.n_heads, adapter.head_dim)
                track_hook(handles, adapter.o_proj(layer).register_forward_pre_hook(head_hook))

        def final_hook(module, args, kwargs):
            hs = args[0] if args else kwargs["hidden_states"]
            store["resid_final"] = gather(hs)
        track_hook(handles, adapter.final_norm.register_forward_pre_hook(final_hook, with_kwargs=True))
        yield store
