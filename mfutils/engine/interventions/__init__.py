"""Interventions as context managers that always remove what they installed.

- :func:`knockout` -- block attention from a query group to a key group in chosen layers
  (through transformers' ``AttentionInterface``, never a copied forward);
- :func:`scale_heads` -- multiply chosen (layer, head) outputs by a factor (0 blocks, >1
  amplifies), via forward pre-hooks on ``o_proj``; :func:`zero_head_per_row` -- a different
  head zeroed in each row of a tiled batch (exhaustive scoring, several heads per pass);
- :func:`capture` -- per-layer attention output, MLP output and residual stream at chosen
  positions, reduced inside the hooks;
- :func:`mean_ablate_mlps` -- replace chosen MLP outputs by a fixed mean vector.
"""

from mfutils.engine.interventions.attention import knockout, knockout_mask, register_attention, saliency_flow
from mfutils.engine.interventions.capture import capture
from mfutils.engine.interventions.heads import active_hook_count, mean_ablate_mlps, scale_heads, zero_head_per_row

__all__ = [
    "active_hook_count",
    "capture",
    "knockout",
    "knockout_mask",
    "mean_ablate_mlps",
    "register_attention",
    "saliency_flow",
    "scale_heads",
    "zero_head_per_row",
]
