"""Chapter 01, beyond the paper: activation patching across instructions ("query, then fetch").

For a conflict asked under one instruction (the *recipient*) and the same conflict under the
opposite one (the *donor*), the residual stream entering layer ``l`` at one *site* of the
recipient (its instruction tokens, or its last position) is replaced by the donor's at the
same positions, and the rest of the recipient's forward pass runs on. Where the patch flips the
answer, that site still carries *which* modality to follow at layer ``l``; the depth from which
patching the instruction tokens no longer matters is where their content has been read.

The paper's two sentences differ in length ("rely on the image content rather than the text
context" against "rely on the text context rather than the input image content"), so the donor
is the recipient's own sentence with its two modality phrases swapped (:func:`donor_item`):
the opposite instruction in the same words, so that every position lines up. A pair that still
does not line up (another tokenizer, another sentence) is left out and counted. A patch at positions ``>= s`` entering layer ``l`` changes nothing below ``l`` and
nothing before ``s``, so it runs through :func:`mfutils.engine.incremental.own_suffix_logits`
from ``l`` and ``s`` on, on the recipient's cached clean pass. Rule 01-qf
(:func:`mfutils.findings.rules.query_then_fetch`) judges the curves.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from mfutils.data.schema import Item
from mfutils.engine import incremental
from mfutils.engine.encoding import encode
from mfutils.engine.metrics import answer_tokens, bootstrap_ci, readout
from mfutils.findings import rules

#: the sites patched: the token group whose residual stream is taken from the donor
SITES = ("instruction", "last")
#: the instructed cue's route into the last position, per direction (the fetch of rule 01-qf)
FETCH_EDGE = {"image": "Vision -/-> Last", "text": "TextCtx -/-> Last"}


#: "... rely on A rather than B." -> "... rely on B rather than A."
_RATHER = re.compile(r"rely on (?P<a>.+?) rather than (?P<b>.+?)\.\s*$")


def donor_item(item):
    """The same conflict under the opposite instruction in the same words: the recipient's
    sentence with the two phrases of its "rely on A rather than B" swapped (None when the
    sentence has no such clause)."""
    m = _RATHER.search(item.instruction or "")
    if m is None:
        return None
    sentence = item.instruction[: m.start()] + f"rely on {m['b']} rather than {m['a']}."
    other = "text" if item.target == "image" else "image"
    return Item.from_dict(dict(item.to_dict(), uid=f"{item.uid}/opposite", target=other, instruction=sentence))


def opposite_pairs(items) -> list[tuple]:
    """``(recipient, donor)`` for every item :func:`donor_item` can swap."""
    return [(it, d) for it in items if (d := donor_item(it)) is not None]


def patched_logits(bundle, run: incremental.CleanRun, donor: incremental.CleanRun, layer: int,
                   positions: list[list[int]]) -> torch.Tensor:
    """``(B, V)`` the recipient's last-position logits with the residual stream entering
    ``layer`` at ``positions[b]`` (per sample) taken from ``donor``, recomputed from that layer
    and each sample's first patched position on. ``run`` and ``donor``: clean passes of two
    batches whose positions line up (the same lengths)."""
    resid = run.resid[layer].clone()
    for b, pos in enumerate(positions):
        idx = torch.as_tensor(pos, device=resid.device)
        resid[b, idx] = donor.resid[layer][b, idx]
    patched = replace(run, resid=[*run.resid[:layer], resid, *run.resid[layer + 1:]])
    starts = torch.tensor([min(p) for p in positions])
    return incremental.own_suffix_logits(bundle, patched, layer, starts)


def _aligned(r_batch, d_batch, b: int) -> bool:
    """Whether sample ``b``'s two prompts line up position by position (same length, the same
    instruction span): only then is a residual stream at a position the same position's."""
    return (int(r_batch.lengths[b]) == int(d_batch.lengths[b])
            and r_batch.spans[b]["instruction"] == d_batch.spans[b]["instruction"]
            and r_batch.spans[b]["last"] == d_batch.spans[b]["last"])


@torch.no_grad()
def patch_sweep(bundle, items, batch_size: int, sites=SITES) -> tuple[pd.DataFrame, int]:
    """Every recipient of :func:`opposite_pairs` patched at every site and layer.

    Returns ``(rows, left out)``: rows ``(uid, target, site, layer, ld, ld_donor, ld_patched)``,
    ``ld`` being the clean follow − competitor logit difference (the recipient's instruction
    decides which answer follows; ``ld_donor`` the donor's on the same pair, negative where it
    follows its own, opposite, instruction), and the number of items left out because no
    opposite sentence lines up with theirs."""
    ad = bundle.adapter
    pairs = opposite_pairs(items)
    rows, left_out = [], len(items) - len(pairs)
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        rec = encode(bundle, [r for r, _ in chunk]).to(bundle.device, bundle.dtype)
        don = encode(bundle, [d for _, d in chunk]).to(bundle.device, bundle.dtype)
        keep = [b for b in range(len(chunk)) if _aligned(rec, don, b)
                and rec.inputs["input_ids"].shape == don.inputs["input_ids"].shape]
        left_out += len(chunk) - len(keep)
        if len(keep) < len(chunk):
            if not keep:
                continue
            chunk = [chunk[b] for b in keep]
            rec = encode(bundle, [r for r, _ in chunk]).to(bundle.device, bundle.dtype)
            don = encode(bundle, [d for _, d in chunk]).to(bundle.device, bundle.dtype)
        answers = [answer_tokens(bundle.tokenizer, r) for r, _ in chunk]
        run, donor = incremental.clean_run(bundle, rec), incremental.clean_run(bundle, don)
        clean = readout(run.logits, answers).logit_diff.float().cpu()
        clean_donor = readout(donor.logits, answers).logit_diff.float().cpu()
        for site in sites:
            positions = [rec.spans[b][site] for b in range(len(chunk))]
            for layer in range(ad.n_layers):
                ld = readout(patched_logits(bundle, run, donor, layer, positions), answers).logit_diff.float().cpu()
                rows += [(r.uid, r.target, site, layer, float(clean[b]), float(clean_donor[b]), float(ld[b]))
                         for b, (r, _) in enumerate(chunk)]
    return pd.DataFrame(rows, columns=["uid", "target", "site", "layer", "ld", "ld_donor", "ld_patched"]), left_out


def patch_curves(rows: pd.DataFrame, n_layers: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Per (target, site, layer): the share of answers flipped (the patched logit difference's
    sign differs from the clean one's) with its Wilson interval, and the mean change in
    log-odds with a bootstrap interval (negative: towards the opposite instruction's answer)."""
    out = []
    for (target, site, layer), g in rows.groupby(["target", "site", "layer"], sort=True):
        flips = int((np.sign(g["ld_patched"]) != np.sign(g["ld"])).sum())
        share, lo, hi = rules.wilson(flips, len(g))
        est, d_lo, d_hi = bootstrap_ci(g["ld_patched"] - g["ld"], n_boot=n_boot, seed=seed)
        out.append({"target": target, "site": site, "layer": int(layer), "depth": float(rules.depth(layer, n_layers)),
                    "n": len(g), "flipped": share, "flipped_ci_low": lo, "flipped_ci_high": hi,
                    "log_odds": est, "log_odds_ci_low": d_lo, "log_odds_ci_high": d_hi})
    return pd.DataFrame(out)


def fetch_layers(curve: pd.DataFrame) -> dict[str, tuple[int, float]]:
    """Per direction, ``(layer, Δ log-odds)`` of the strongest knockout of :data:`FETCH_EDGE`
    (chapter 01's :func:`mfutils.findings.routing.curves`)."""
    out = {}
    for target, edge in FETCH_EDGE.items():
        c = curve[(curve["edge"] == edge) & (curve["target"] == target)]
        if len(c):
            layer, value = rules.strongest_layer(dict(zip(c["layer"].astype(int), c["log_odds"])), "negative")
            out[target] = (int(layer), float(value))
    return out


def verdict(pcurve: pd.DataFrame, curve: pd.DataFrame, n_layers: int, left_out: int = 0) -> dict:
    """Rule 01-qf's verdict row: :func:`mfutils.findings.rules.query_then_fetch` per direction,
    combined (met only if met in both)."""
    r = rules.rule("01-qf")
    fetch = fetch_layers(curve)
    per, notes = {}, []
    for target in ("image", "text"):
        p = pcurve[pcurve["target"] == target]
        if p.empty or target not in fetch:
            per[target], note = "not measurable", "not measured"
        else:
            flips = {site: dict(zip(g["layer"].astype(int), g["flipped"])) for site, g in p.groupby("site")}
            per[target], note = rules.query_then_fetch(flips.get("instruction", {}), flips.get("last", {}), fetch[target],
                                                       n_layers)
        notes.append(f"{target}: {note}")
    if any(v == "not measurable" for v in per.values()):
        v, none = rules.combine_directions(per)
    else:
        v, none = rules.combine_met(per)
    ours = "; ".join(notes) + (f"; {none}" if none else "") + (f"; {left_out} items left out (no aligned opposite)"
                                                              if left_out else "")
    return rules.verdict_row(r, ours, v)
