"""Reading answers off the last position, and the paper's metrics.

An answer is read at the final input position, from its first token (paper-notes.md, "Task
and data"). Each modality's answer is the set of first tokens of all its candidate surface
forms (with and without a leading space, lower- and capitalised), minus tokens shared with the
other modality's set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mfutils.data.schema import Item


@dataclass(frozen=True)
class AnswerTokens:
    """First-token ids of one item's following and competitor answers (disjoint)."""

    following: tuple[int, ...]
    competitor: tuple[int, ...]


def first_token_ids(tokenizer, words) -> set[int]:
    """First token of each word, as it would follow the prompt (with and without leading space)."""
    ids: set[int] = set()
    for w in words:
        for form in {w, w.lower(), w.capitalize()}:
            for text in (form, " " + form):
                toks = tokenizer(text, add_special_tokens=False)["input_ids"]
                toks = [t for t in toks if t != tokenizer.unk_token_id and tokenizer.decode([t]).strip()]
                if toks:
                    ids.add(toks[0])
    return ids


def answer_tokens(tokenizer, item: Item) -> AnswerTokens:
    """Disjoint first-token sets for ``item``'s following and competitor answers.

    Raises ``ValueError`` if the following answer has no token of its own (ambiguous item).
    """
    if item.kind in ("image_only", "text_only"):
        modality = "image" if item.kind == "image_only" else "text"
        return AnswerTokens(tuple(sorted(first_token_ids(tokenizer, item.answer_candidates(modality)))), ())
    follow_mod = item.target
    other_mod = "text" if follow_mod == "image" else "image"
    f = first_token_ids(tokenizer, item.answer_candidates(follow_mod))
    c = first_token_ids(tokenizer, item.answer_candidates(other_mod))
    if item.kind == "consistent":
        return AnswerTokens(tuple(sorted(f | c)), ())
    shared = f & c
    f, c = f - shared, c - shared
    if not f or not c:
        raise ValueError(f"item {item.uid}: following and competitor answers share every first token")
    return AnswerTokens(tuple(sorted(f)), tuple(sorted(c)))


def _set_logsumexp(logits: torch.Tensor, sets: list[tuple[int, ...]]) -> torch.Tensor:
    out = torch.full((logits.shape[0],), float("-inf"), dtype=logits.dtype, device=logits.device)
    for b, ids in enumerate(sets):
        if ids:
            out[b] = torch.logsumexp(logits[b, list(ids)], dim=0)
    return out


@dataclass
class Readout:
    """Per-sample quantities at the last position. All tensors are ``(B,)``.

    ``p_follow``/``p_comp``: probability mass (full softmax) on each answer's token set;
    ``binary``: ``p_follow / (p_follow + p_comp)``, the binary following/competitor distribution;
    ``logit_diff``: logsumexp of following-answer logits minus that of the competitor's;
    ``decision``: 1 follow, -1 competitor, 0 something else (argmax of the full vocabulary).
    """

    p_follow: torch.Tensor
    p_comp: torch.Tensor
    logit_diff: torch.Tensor
    decision: torch.Tensor

    @property
    def binary(self) -> torch.Tensor:
        return self.p_follow / (self.p_follow + self.p_comp).clamp_min(1e-30)


def readout(logits: torch.Tensor, answers: list[AnswerTokens]) -> Readout:
    """Read a batch's answers from last-position ``logits`` ``(B, V)``."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    lf = _set_logsumexp(logp, [a.following for a in answers])
    lc = _set_logsumexp(logp, [a.competitor for a in answers])
    top = logits.argmax(-1).tolist()
    decision = torch.tensor(
        [1 if t in a.following else (-1 if t in a.competitor else 0) for t, a in zip(top, answers)]
    )
    return Readout(lf.exp(), lc.exp(), lf - lc, decision)


def last_logits(outputs, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, V)`` logits at each sample's last real position from ``(B, T, V)`` outputs."""
    logits = outputs.logits
    idx = (lengths.to(logits.device) - 1)[:, None, None].expand(-1, 1, logits.shape[-1])
    return logits.gather(1, idx)[:, 0]


def forward_last_logits(model, inputs: dict, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, V)`` logits at each sample's last real position, unembedding only those positions.

    Every supported family's ``ForConditionalGeneration`` is ``lm_head(model.model(...)[0])``;
    unembedding ``B`` rows instead of ``B x T`` saves about 40% of a forward pass on a model
    with a large vocabulary (SmolLM2: 49,153 x 576, measured). ``logits_to_keep`` cannot do
    this for right-padded batches, whose last positions differ per sample.
    """
    # no key/value cache: nothing continues from this pass, and a checkpointed gradient pass
    # (mfutils.engine.memory.checkpointed_layers) could not keep one
    return unembed_last(model, model.model(**inputs, use_cache=False)[0], lengths)


def unembed_last(model, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, V)`` logits of ``hidden`` ``(B, T, d)`` (the base model's output, after its final
    norm) at each sample's last real position ``lengths - 1``."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return model.lm_head(hidden[rows, lengths.to(hidden.device) - 1])


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, stat=np.mean) -> tuple[float, float, float]:
    """``(estimate, low, high)``: the statistic and its percentile bootstrap CI (seeded)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boots = stat(x[idx], axis=1)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(stat(x)), float(lo), float(hi)


def following_ratio(decisions) -> float:
    """Modality-following ratio: share of samples answered with the instructed modality."""
    d = np.asarray(decisions)
    return float((d == 1).mean()) if d.size else float("nan")


def relative_drop(before: float, after: float) -> float:
    """Relative change ``(before - after) / before`` (the paper's "drops by 60%", read as relative)."""
    return float((before - after) / before) if before else float("nan")
