"""Logit lens, LDAR and the per-sublayer logit-change decomposition (chapters 02 and 03).

For a residual ``r`` the lens reads ``lens(r) = W_U · norm(r)`` (final norm, unembedding).
With ``pre_l`` the residual entering layer ``l``, ``mid_l = pre_l + attn_l`` and
``pre_{l+1} = mid_l + mlp_l``, the *logit-change contribution* of a sublayer is the lens
after it minus the lens before it (paper-notes.md). These telescope exactly:

    lens(final) = lens(pre_0) + sum_l [lens(mid_l) - lens(pre_l)] + [lens(pre_{l+1}) - lens(mid_l)]

so the per-layer contributions plus the embedding term sum to the model's own logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mfutils.engine.encoding import batches, encode
from mfutils.engine.interventions import capture
from mfutils.engine.metrics import answer_tokens, forward_last_logits
from mfutils.findings.rules import depth


@dataclass
class LensTrace:
    """Per-sample answer logits along depth at one position.

    ``follow``/``comp``: ``(B, 2L + 1)`` lens values of the following / competitor answer
    (logsumexp over each answer's tokens) at stages ``pre_0, mid_0, pre_1, mid_1, ..., final``.
    """

    follow: np.ndarray
    comp: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        return self.follow - self.comp


def _set_value(logits: torch.Tensor, ids_per_sample: list[tuple[int, ...]]) -> torch.Tensor:
    out = torch.full(logits.shape[:-1], float("nan"))
    for b, ids in enumerate(ids_per_sample):
        if ids:
            out[b] = torch.logsumexp(logits[b, ..., list(ids)].float(), dim=-1)
    return out


@torch.no_grad()
def trace(bundle, items, batch_size: int, position: str = "last") -> tuple[pd.DataFrame, LensTrace]:
    """Run the lens over every stage at ``position`` (``"last"`` or a group's last token,
    e.g. ``"instruction"``). Returns per-sample metadata (with the model's final decision
    and logits) and the :class:`LensTrace`.
    """
    ad = bundle.adapter
    meta, fol, com = [], [], []
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
        answers = [answer_tokens(bundle.tokenizer, it) for it in chunk]
        if position == "last":
            pos = batch.last[:, None]
        else:
            pos = torch.tensor([[sp[position][-1]] for sp in batch.spans], device=bundle.device)
        with capture(ad, pos) as store:
            last = forward_last_logits(bundle.model, batch.inputs, batch.lengths)
        stages = []
        for layer in range(ad.n_layers):
            pre = store["resid_pre"][layer][:, 0]
            stages += [pre, pre + store["attn"][layer][:, 0]]
        stages.append(store["resid_final"][:, 0])
        f, c = _answer_lens(ad, torch.stack(stages, dim=1), answers)  # (B, 2L+1) each
        meta += _final_meta(chunk, answers, last)
        fol.append(f.numpy())
        com.append(c.numpy())
    return pd.DataFrame(meta), LensTrace(np.concatenate(fol), np.concatenate(com))


def _answer_lens(ad, resid: torch.Tensor, answers) -> tuple[torch.Tensor, torch.Tensor]:
    """``(follow, comp)`` lens values (logsumexp over each answer's tokens) of ``resid``
    ``(B, ..., d)``, each ``(B, ...)``, unembedding only the batch's answer tokens
    (:meth:`mfutils.models.adapters.base.Adapter.lens_at`)."""
    ids = sorted({t for a in answers for t in (*a.following, *a.competitor)})
    col = {t: i for i, t in enumerate(ids)}
    logits = ad.lens_at(resid, ids)
    return (_set_value(logits, [[col[t] for t in a.following] for a in answers]),
            _set_value(logits, [[col[t] for t in a.competitor] for a in answers]))


def _final_meta(chunk, answers, final: torch.Tensor) -> list[dict]:
    """Per sample: uid, target, the model's decision (1 follow, -1 competitor, 0 neither) and
    final margin, from last-position logits ``(B, V)``."""
    top = final.argmax(-1).tolist()
    rows = []
    for b, it in enumerate(chunk):
        dec = 1 if top[b] in answers[b].following else (-1 if top[b] in answers[b].competitor else 0)
        rows.append({"uid": it.uid, "target": it.target, "decision": dec,
                     "competitor_is_prior": bool((it.meta or {}).get("prior") == it.competitor_answer),
                     "model_margin": float(_set_value(final[b : b + 1], [answers[b].following])[0]
                                           - _set_value(final[b : b + 1], [answers[b].competitor])[0])})
    return rows


def group_tokens(bundle, item, group: str = "instruction") -> list[str]:
    """The tokens of ``item``'s ``group`` as text, in order: the words a per-token figure labels
    its rows with (``"token k"`` of :func:`mfutils.findings.arbitration.ldar_table` is the k-th)."""
    batch = encode(bundle, [item])
    ids = batch.inputs["input_ids"][0]
    return [bundle.tokenizer.decode([int(ids[p])]) for p in batch.spans[0][group]]


@torch.no_grad()
def group_reads(bundle, items, batch_size: int, group: str = "instruction") -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The lens at *every* token of ``group`` and the group's mean residual, at each layer's output.

    Returns ``(meta, margins, states)``: ``meta`` as :func:`trace`; ``margins`` ``(N, P, L)``
    lens margins (follow - competitor) at the group's ``P`` tokens (NaN past a sample's own
    length); ``states`` ``(N, L, d)`` the residual averaged over the group's tokens.
    """
    ad = bundle.adapter
    meta, margins, states = [], [], []
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
        answers = [answer_tokens(bundle.tokenizer, it) for it in chunk]
        spans = [sp[group] for sp in batch.spans]
        P = max(len(s) for s in spans)
        # pad each sample's positions by repeating its last one; the padding is masked below
        pos = torch.tensor([s + [s[-1]] * (P - len(s)) for s in spans], device=bundle.device)
        valid = torch.tensor([[k < len(s) for k in range(P)] for s in spans])
        with capture(ad, pos, points=("resid_pre",)) as store:
            last = forward_last_logits(bundle.model, batch.inputs, batch.lengths)
        outs = [store["resid_pre"][l] for l in range(1, ad.n_layers)] + [store["resid_final"]]  # L x (B, P, d)
        m = torch.stack([torch.sub(*_answer_lens(ad, x, answers)) for x in outs], -1)  # (B, P, L)
        margins.append(m.masked_fill(~valid[..., None], float("nan")).numpy())
        w = valid.to(outs[0].dtype).to(outs[0].device)[..., None]
        states.append(torch.stack([(x * w).sum(1) / w.sum(1) for x in outs], 1).float().cpu().numpy())
        meta += _final_meta(chunk, answers, last)
    width = max(a.shape[1] for a in margins)
    margins = [np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=np.nan) for a in margins]
    return pd.DataFrame(meta), np.concatenate(margins), np.concatenate(states)


def per_layer(tr: LensTrace) -> dict[str, np.ndarray]:
    """Lens values at each layer's output (``pre_{l+1}``; the last is the final residual),
    and the attention and MLP logit-change contributions, each ``(B, L)``."""
    pre = tr.follow[:, 0::2], tr.comp[:, 0::2]        # pre_0 .. pre_{L-1}, final
    mid = tr.follow[:, 1::2], tr.comp[:, 1::2]        # mid_0 .. mid_{L-1}
    out = {}
    for name, k in (("follow", 0), ("comp", 1)):
        out[f"{name}_lens"] = pre[k][:, 1:]
        out[f"{name}_attn"] = mid[k] - pre[k][:, :-1]
        out[f"{name}_mlp"] = pre[k][:, 1:] - mid[k]
        out[f"{name}_embed"] = pre[k][:, 0]
    for part in ("lens", "attn", "mlp", "embed"):
        out[f"margin_{part}"] = out[f"follow_{part}"] - out[f"comp_{part}"]
    return out


def ldar(meta: pd.DataFrame, anchor: LensTrace) -> np.ndarray:
    """Latent decision alignment rate per layer: share of samples whose lens decision at the
    anchor (follow vs competitor, by the sign of the margin) equals the model's final one.
    Samples whose final answer is neither candidate are left out. Returns ``(L,)``."""
    final = np.sign(meta["model_margin"].to_numpy())
    keep = meta["decision"].to_numpy() != 0
    m = per_layer(anchor)["margin_lens"]
    return (np.sign(m[keep]) == final[keep, None]).mean(0)


def summarize_layers(values: np.ndarray, n_layers: int, name: str, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Mean over samples per layer with a 95% bootstrap CI (``values``: ``(B, L)``)."""
    rng = np.random.default_rng(seed)
    B = values.shape[0]
    if B == 0:
        # typed, so that concatenating it with filled tables keeps their columns numeric
        return pd.DataFrame({"layer": pd.Series(dtype="int64"), "depth": pd.Series(dtype=float),
                             name: pd.Series(dtype=float), "ci_low": pd.Series(dtype=float),
                             "ci_high": pd.Series(dtype=float), "n": pd.Series(dtype="int64")})
    idx = rng.integers(0, B, size=(n_boot, B))
    boots = np.nanmean(values[idx], axis=1)  # (n_boot, L)
    lo, hi = np.nanquantile(boots, [0.025, 0.975], axis=0)
    return pd.DataFrame({"layer": np.arange(n_layers), "depth": depth(np.arange(n_layers), n_layers),
                         name: np.nanmean(values, 0), "ci_low": lo, "ci_high": hi, "n": B})


def fit_ridge_probe(x: np.ndarray, y: np.ndarray, ridge: float = 0.01) -> tuple[np.ndarray, float]:
    """Linear probe by ridge regression on standardised features (closed form, deterministic).

    ``x``: ``(n, d)`` states, ``y``: ``(n,)`` booleans. Returns ``(w, b)`` with
    ``x @ w + b > 0`` predicting ``y``. Standardising matters: a raw mean-difference direction
    is swamped by the few high-variance residual dimensions (position, norm), measured here.
    """
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    t = np.where(y, 1.0, -1.0)
    w = np.linalg.solve(z.T @ z + ridge * len(z) * np.eye(z.shape[1]), z.T @ (t - t.mean()))
    return w / sd, float(t.mean() - (mu / sd) @ w)


def anchor_probe(bundle, items_fit, items_test, batch_size: int) -> pd.DataFrame:
    """The "instruction-compliant subspace", made concrete: at the last instruction token, a
    linear probe (:func:`fit_ridge_probe`) fitted on one split to tell follow-image from
    follow-text states; its accuracy on a disjoint split, per layer."""
    def states(items):
        ad = bundle.adapter
        xs, ys = [], []
        for chunk in batches(items, batch_size):
            batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
            pos = torch.tensor([[sp["instruction"][-1]] for sp in batch.spans], device=bundle.device)
            with torch.no_grad(), capture(ad, pos, points=("resid_pre",)) as store:
                bundle.model.model(**batch.inputs, use_cache=False)  # the decoder only: no logits are read
            layers = [store["resid_pre"][l][:, 0] for l in range(1, ad.n_layers)] + [store["resid_final"][:, 0]]
            xs.append(torch.stack(layers, 1).float().cpu().numpy())
            ys += [it.target == "image" for it in chunk]
        return np.concatenate(xs), np.array(ys)

    xf, yf = states(items_fit)
    xt, yt = states(items_test)
    rows = []
    for layer in range(xf.shape[1]):
        w, b = fit_ridge_probe(xf[:, layer], yf)
        acc = float((((xt[:, layer] @ w + b) > 0) == yt).mean())
        rows.append({"layer": layer, "depth": float(depth(layer, xf.shape[1])), "probe_accuracy": acc})
    return pd.DataFrame(rows)


def answered_image(meta: pd.DataFrame) -> np.ndarray:
    """Whether each sample's final answer came from the image (its decision read as a modality)."""
    followed = meta["decision"].to_numpy() == 1
    return np.where(meta["target"].to_numpy() == "image", followed, ~followed)


def decision_probe(fit_meta: pd.DataFrame, fit_states: np.ndarray, meta: pd.DataFrame, states: np.ndarray) -> pd.DataFrame:
    """A probe-based decision read beside the lens: per layer, a ridge probe
    (:func:`fit_ridge_probe`) on the instruction tokens' mean residual, fitted on a disjoint
    split to tell which modality the model will answer from; its accuracy on this split,
    overall and on followed / failed samples, beside an *instruction-only* reader that always
    predicts the instructed modality (100% on followed, 0% on failed samples).
    Samples answering neither candidate are left out of both splits."""
    keep_f = fit_meta["decision"].to_numpy() != 0
    keep = meta["decision"].to_numpy() != 0
    yf, y = answered_image(fit_meta)[keep_f], answered_image(meta)[keep]
    followed = meta["decision"].to_numpy()[keep] == 1
    rows = []
    for layer in range(states.shape[1]):
        w, b = fit_ridge_probe(fit_states[keep_f, layer], yf)
        right = ((states[keep, layer] @ w + b) > 0) == y
        rows.append({"layer": layer, "depth": float(depth(layer, states.shape[1])),
                     "probe: all": float(right.mean()),
                     "probe: followed": float(right[followed].mean()) if followed.any() else float("nan"),
                     "probe: failed": float(right[~followed].mean()) if (~followed).any() else float("nan"),
                     "instruction-only reader: all": float(followed.mean()), "n failed": int((~followed).sum())})
    return pd.DataFrame(rows)
