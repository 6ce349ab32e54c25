"""Chapter 04: score every attention head's causal role in modality following.

All scores are of the per-sample metric ``m = logit(follow) - logit(competitor)`` at the
last position (logsumexp over each answer's tokens), averaged over samples; a positive score
means the head supports the instructed answer.

- :func:`ablation_scores` (exhaustive, the reference): ``m(clean) - m(head zeroed)``; one
  forward pass per head per batch.
- :func:`attribution_scores` (fast; attribution patching): the first-order estimate of the
  same quantity, ``sum_{pos, d} act * dm/dact`` over the head's slice of the ``o_proj``
  input; one forward and one backward pass per batch for every head at once. Exact when
  ``m`` is linear in the head outputs.
- :func:`direct_scores`: each head's direct contribution to the margin at the last position
  through the final norm (frozen at its clean scale) and the unembedding.

The functions take a ``metric`` callable (runs the model, returns ``(B,)``), so the same code
scores a toy module in the tests and a 7B model on a GPU, with one model copy in memory.
"""

from __future__ import annotations

import typing

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from mfutils.engine import incremental, memory
from mfutils.engine.encoding import batches, encode
from mfutils.engine.interventions import capture, scale_heads, zero_head_per_row
from mfutils.engine.interventions.heads import track_hook, hooks_removed_on_exit
from mfutils.engine.metrics import answer_tokens, forward_last_logits, readout
from mfutils.runs.params import RunSpec

Metric = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class HeadsSpec(RunSpec):
    chapter: str = "04_sparse_heads"
    #: the files a finished run holds (:meth:`mfutils.runs.results.RunWriter.finish` refuses to finish without them)
    OUTPUTS: typing.ClassVar[tuple[str, ...]] = (
        "head_maps.csv", "head_maps.png", "results.json", "scores.npz", "sparsity.csv", "sparsity.png",
    )
    n_samples: int = 32
    top_fraction: float = 0.05
    # single-head ablation needs 1 + (number of heads) passes per sample: the tiny organism's
    # reference (its comparison run sets it); at the pretrained organism's 270 heads and on a 7B
    # model, heads are ranked by the fast attribution score with exact ablation of its shortlist
    exhaustive: bool = False
    #: conflicts per direction on which a non-exhaustive run also ablates every head, to report
    #: how the fast scorer agrees with exhaustive ablation (rule 04-fast); an exhaustive run
    #: compares on all its samples
    agreement_samples: int = 4


def ablation_per_sample(adapter, metric: Metric, heads: list[tuple[int, int]] | None = None,
                        metric_from: Callable[[int], torch.Tensor] | None = None) -> torch.Tensor:
    """``(B, L, H)`` per-sample ``metric(clean) - metric(head zeroed)`` for ``heads`` (all heads
    when None); NaN for heads not ablated. One pass per listed head, plus the clean one.

    ``metric_from(layer)``, when given, evaluates the metric recomputing only from ``layer``
    on (the incremental engine: layers below the ablated head's are unchanged)."""
    with torch.no_grad():
        clean = metric().float().cpu()
        out = torch.full((clean.shape[0], adapter.n_layers, adapter.n_heads), float("nan"))
        todo = heads if heads is not None else [(l, h) for l in range(adapter.n_layers) for h in range(adapter.n_heads)]
        for layer, head in todo:
            with scale_heads(adapter, [(layer, head)], 0.0):
                edited = metric_from(layer) if metric_from is not None else metric()
                out[:, layer, head] = clean - edited.float().cpu()
    return out


@torch.no_grad()
def ablation_tiled(bundle, run, answers, heads_per_pass: int) -> torch.Tensor:
    """``(B, L, H)`` per-sample ``metric(clean) - metric(head zeroed)`` for every head, as
    :func:`ablation_per_sample` with the incremental engine, but ``heads_per_pass`` heads of a
    layer per pass: the batch is tiled once per head and each copy loses a different head
    (:func:`mfutils.engine.interventions.zero_head_per_row`), recomputed from that layer on.

    ``run``: the batch's :class:`mfutils.engine.incremental.CleanRun`; ``answers``: its answer pairs.
    Same forward-equivalents as one head per pass, in ``ceil(H / heads_per_pass)`` passes per
    layer instead of ``H`` (larger matrices: the GPU's throughput, not fewer FLOPs).
    """
    ad = bundle.adapter
    clean = readout(run.logits, answers).logit_diff.float().cpu()  # (B,)
    B, H = clean.shape[0], ad.n_heads
    k_max = max(1, min(H, heads_per_pass))
    out = torch.empty(B, ad.n_layers, H)
    for layer in range(ad.n_layers):
        for first in range(0, H, k_max):
            chunk = list(range(first, min(H, first + k_max)))
            rows = torch.tensor(chunk).repeat_interleave(B)  # copy j (rows j*B .. j*B+B-1) loses head chunk[j]
            with zero_head_per_row(ad, layer, rows):
                logits = incremental.suffix_logits(bundle, run, layer, 0, tiles=len(chunk))
            edited = readout(logits, answers * len(chunk)).logit_diff.float().cpu().view(len(chunk), B)
            out[:, layer, chunk] = (clean[None] - edited).T
    return out


def ablation_scores(adapter, metric: Metric) -> torch.Tensor:
    """``(L, H)`` mean over samples of ``metric(clean) - metric(head zeroed)``."""
    return ablation_per_sample(adapter, metric).mean(0)


def _alpha_gradient(adapter, metric: Metric, alpha: torch.Tensor, checkpoint: bool | None = None) -> torch.Tensor:
    """``(L, H)`` mean over samples of ``d metric / d alpha`` with every head's output scaled by
    ``alpha[layer, head]`` (a pre-hook on each ``o_proj``; one forward and one backward).

    ``checkpoint``: recompute each decoder layer in the backward pass instead of keeping its
    activations (:func:`mfutils.engine.memory.checkpointed_layers`; one more forward pass, a fraction
    of the memory). None: on a GPU only. The gradient is read at ``alpha`` alone, which the
    recomputed layers deliver as well."""
    if checkpoint is None:
        checkpoint = adapter.o_proj(0).weight.device.type == "cuda"
    H, D = adapter.n_heads, adapter.head_dim
    a = alpha.clone().requires_grad_(True)

    def make_hook(layer):
        def hook(module, args):
            x = args[0]
            y = (x.view(*x.shape[:-1], H, D) * a[layer][:, None].to(x.dtype)).view_as(x)
            return (y,) + tuple(args[1:])
        return hook

    with torch.enable_grad(), memory.checkpointed_layers(adapter, checkpoint), hooks_removed_on_exit() as handles:
        for layer in range(adapter.n_layers):
            track_hook(handles, adapter.o_proj(layer).register_forward_pre_hook(make_hook(layer)))
        m = metric()
        m.float().mean().backward()
    return a.grad.detach().float().cpu()


def attribution_scores(adapter, metric: Metric) -> torch.Tensor:
    """``(L, H)`` first-order estimate of :func:`ablation_scores` from one forward+backward:
    ``d metric / d alpha`` at ``alpha = 1``, which is ``sum_{pos, d} act * d metric / d act``
    over the head's slice of the ``o_proj`` input. Exact when ``metric`` is linear in the heads."""
    return _alpha_gradient(adapter, metric, torch.ones(adapter.n_layers, adapter.n_heads))


def ig_scores(adapter, metric: Metric, steps: int = 2) -> torch.Tensor:
    """``(L, H)`` integrated gradients of ``metric`` along the path that scales every head from
    0 to 1 together (EAP-IG): the mean of ``d metric / d alpha`` at the ``steps`` midpoints
    ``alpha = (i + 1/2) / steps``. Where the metric is not linear in a head (large early heads),
    this follows the curve that a single gradient at ``alpha = 1`` misses; where heads do not
    interact it equals the exact ablation effect for any metric quadratic in them.
    ``steps`` forward and backward passes."""
    ones = torch.ones(adapter.n_layers, adapter.n_heads)
    return torch.stack([_alpha_gradient(adapter, metric, ones * (i + 0.5) / steps) for i in range(steps)]).mean(0)


#: integrated-gradient steps of the fast scorer, and how many times the top-k it shortlists
IG_STEPS = 2
SHORTLIST_FACTOR = 2
#: forward-equivalent cost of one backward pass (about twice a forward's arithmetic)
BACKWARD_COST = 2


def n_top(n_heads_total: int, fraction: float) -> int:
    return max(1, int(np.ceil(fraction * n_heads_total)))


def fast_scores(adapter, metric: Metric, fraction: float = 0.05,
                metric_from: Callable[[int], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, list]:
    """The fast scorer: integrated gradients for every head (:func:`ig_scores`), then exact
    ablation of its shortlist (the ``SHORTLIST_FACTOR x k`` heads of largest ``|IG|``, ``k`` the
    top-``fraction`` count), whose IG values the ablation replaces.

    Returns ``(scores (L, H), per-sample ablation (B, L, H) of the shortlist, shortlist)``."""
    ig = ig_scores(adapter, metric, IG_STEPS)
    k = min(ig.numel(), SHORTLIST_FACTOR * n_top(ig.numel(), fraction))
    shortlist = top_heads(ig.abs().numpy(), k / ig.numel())[:k]
    exact = ablation_per_sample(adapter, metric, shortlist, metric_from)
    scores = ig.clone()
    for layer, head in shortlist:
        scores[layer, head] = exact[:, layer, head].mean()
    return scores, exact, shortlist


def fast_passes(n_heads_total: int, fraction: float, n_layers: int | None = None) -> float:
    """Forward-equivalent passes per sample of :func:`fast_scores`, its shortlist ablated by
    full passes; with ``n_layers``, by the incremental engine from each head's own layer, at
    the average share ``(L + 1) / (2 L)`` of a pass (an estimate: the real share depends on
    the shortlist's layers, which :func:`score_all` counts)."""
    k = min(n_heads_total, SHORTLIST_FACTOR * n_top(n_heads_total, fraction))
    share = 1.0 if n_layers is None else incremental.mean_layer_share(n_layers)
    return IG_STEPS * (1 + BACKWARD_COST) + 1 + k * share


def model_metric(bundle, batch, answers) -> Metric:
    """The logit-difference metric of one encoded batch, as a callable."""
    def metric():
        return readout(forward_last_logits(bundle.model, batch.inputs, batch.lengths), answers).logit_diff
    return metric


def incremental_metric(bundle, run, answers) -> Callable[[int], torch.Tensor]:
    """``metric_from(layer)``: the metric of the batch whose clean pass is ``run``
    (:func:`mfutils.engine.incremental.clean_run`), recomputed from ``layer`` on under whatever edits
    are active."""
    return lambda layer: readout(incremental.suffix_logits(bundle, run, layer, 0), answers).logit_diff


@torch.no_grad()
def direct_scores(bundle, batch, answers) -> torch.Tensor:
    """``(L, H)`` mean direct contribution of each head's output at the last position to the
    follow-minus-competitor logit, through the final norm frozen at the clean scale."""
    ad = bundle.adapter
    with capture(ad, batch.last[:, None], points=(), head_inputs=True) as store:
        logits = forward_last_logits(bundle.model, batch.inputs, batch.lengths)
    final = store["resid_final"][:, 0]  # (B, d)
    rms = final.float().pow(2).mean(-1, keepdim=True).add(getattr(ad.final_norm, "variance_epsilon", 1e-6)).sqrt()
    gain = ad.final_norm.weight.float()
    W_U = ad.unembed.weight.float()
    f_id = torch.tensor([max(a.following, key=lambda t: float(logits[b, t])) for b, a in enumerate(answers)])
    c_id = torch.tensor([max(a.competitor, key=lambda t: float(logits[b, t])) for b, a in enumerate(answers)])
    direction = (W_U[f_id] - W_U[c_id]) * gain / rms  # (B, d)
    out = torch.zeros(ad.n_layers, ad.n_heads)
    H, D = ad.n_heads, ad.head_dim
    for layer in range(ad.n_layers):
        z = store["head_in"][layer][:, 0].float()  # (B, H, D)
        W_o = ad.o_proj(layer).weight.float().view(-1, H, D)  # (d, H, D)
        per_head = torch.einsum("bhk,dhk->bhd", z, W_o)  # (B, H, d)
        out[layer] = torch.einsum("bhd,bd->bh", per_head, direction).mean(0).cpu()
    return out


def score_all(bundle, items, batch_size: int, exhaustive: bool = True, fraction: float = 0.05,
              answers_of=None) -> dict:
    """Every head's scores over ``items`` (batch means weighted by batch size), plus pass counts.

    Returns ``(n_layers, n_heads)`` arrays ``ablation`` (the exact single-head ablation effect,
    NaN for every head not ablated on every sample: all heads when exhaustive, else the fast
    scorer's shortlist), ``ablation_se`` (its standard error over samples, NaN likewise),
    ``exact_samples`` (``(N, L, H)`` per sample), ``fast`` (:func:`fast_scores`),
    ``attribution`` and ``direct``, and ``passes_per_sample`` in forward-equivalents (a
    backward pass counts :data:`BACKWARD_COST`). ``answers_of(item)`` gives the answer pair
    to score (default :func:`mfutils.engine.metrics.answer_tokens`; single-modality controls pass
    their parent conflict's pair).
    """
    ad = bundle.adapter
    answers_of = answers_of or (lambda it: answer_tokens(bundle.tokenizer, it))
    acc = {k: torch.zeros(ad.n_layers, ad.n_heads) for k in ("fast", "attribution", "direct")}
    per_sample, n = [], 0
    fast_exact, shortlist_work = [], 0.0
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
        answers = [answers_of(it) for it in chunk]
        metric = model_metric(bundle, batch, answers)
        run = incremental.clean_run(bundle, batch)
        metric_from = incremental_metric(bundle, run, answers)
        w = len(chunk)
        if exhaustive:
            k = memory.heads_per_pass(bundle, w, batch.inputs["input_ids"].shape[1])
            per_sample.append(ablation_tiled(bundle, run, answers, k))
        f, exact, shortlist = fast_scores(ad, metric, fraction, metric_from)
        fast_exact.append(exact)
        shortlist_work += w * sum(incremental.forward_share(ad.n_layers, 1, layer, 0) for layer, _ in shortlist)
        acc["fast"] += f * w
        acc["attribution"] += attribution_scores(ad, metric) * w
        acc["direct"] += direct_scores(bundle, batch, answers) * w
        n += w
    out = {k: (v / n).numpy() for k, v in acc.items()}
    samples = torch.cat(per_sample) if exhaustive else torch.cat(fast_exact)
    _set_exact(out, samples)
    total = ad.n_layers * ad.n_heads
    L = ad.n_layers
    out["passes_per_sample"] = {"ablation": (1 + total) if exhaustive else 0, "fast": fast_passes(total, fraction),
                                # its shortlist rerun from each head's own layer, as fast_scores runs it
                                "fast, incremental": IG_STEPS * (1 + BACKWARD_COST) + 1 + shortlist_work / n,
                                "attribution": 1 + BACKWARD_COST, "direct": 1,
                                # the incremental engine: one clean pass, then each head from its own layer
                                "ablation, incremental": (1 + total * incremental.mean_layer_share(L)) if exhaustive else 0}
    return out


def _set_exact(scores: dict, samples: torch.Tensor) -> None:
    """Store per-sample exact ablations ``(N, L, H)`` (NaN: not measured) and their mean and
    standard error, NaN for a head not measured on every sample."""
    scores["exact_samples"] = samples
    scores["ablation"] = samples.mean(0).numpy()
    scores["ablation_se"] = (samples.std(0) / np.sqrt(samples.shape[0])).numpy()


def measured(scores: dict) -> np.ndarray:
    """``(L, H)`` whether each head's ablation effect was measured exactly, with its standard error."""
    return np.isfinite(scores["ablation"]) & np.isfinite(scores["ablation_se"])


def best_available(scores: dict, score: str) -> np.ndarray:
    """``(L, H)`` the exact ablation effect where measured, else ``scores[score]`` (an estimate)."""
    return np.where(measured(scores), scores["ablation"], scores[score])


def measure_heads(bundle, items, heads: list[tuple[int, int]], batch_size: int, answers_of=None) -> torch.Tensor:
    """``(N, L, H)`` per-sample exact ablation of ``heads`` on ``items`` (NaN elsewhere), each
    head rerun by the incremental engine from its own layer."""
    ad = bundle.adapter
    answers_of = answers_of or (lambda it: answer_tokens(bundle.tokenizer, it))
    out = []
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
        answers = [answers_of(it) for it in chunk]
        run = incremental.clean_run(bundle, batch)
        out.append(ablation_per_sample(ad, model_metric(bundle, batch, answers), heads, incremental_metric(bundle, run, answers)))
    return torch.cat(out)


#: rounds of :func:`complete_measurements` before it gives up (each measures every unmeasured candidate)
MAX_MEASURE_ROUNDS = 20


def candidates(by_dir: dict[str, dict], score: str, fraction: float) -> dict[str, set]:
    """Per direction, the heads whose exact measurement a verdict needs: the top ``fraction``
    by the best available following effect (rule 04-specific reads them) and the top
    ``fraction`` by the best available specificity in either direction (the chapter-05 set)."""
    follow = {t: best_available(d["follow"], score) for t, d in by_dir.items()}
    spec = np.max(np.stack([follow[t] - best_available(d["control"], score) for t, d in by_dir.items()]), 0)
    shared = set(top_heads(spec, fraction))
    return {t: shared | set(top_heads(follow[t], fraction)) for t in by_dir}


def complete_measurements(bundle, sets: dict[str, dict], by_dir: dict[str, dict], score: str, fraction: float,
                          batch_size: int) -> int:
    """Rule of 2026-12-06: no estimate stands in for a measurement. Exactly ablate, on follow
    and control items, every head :func:`candidates` names that is not yet measured there, and
    repeat (measured values replace estimates and may move other heads up) until every
    candidate is measured. ``sets[t]``: ``{"follow": items, "control": items, "answers_of":
    callable or None}``. Updates ``by_dir`` in place (``fast`` takes the exact value of each
    newly measured head, as the fast scorer's shortlist does); returns the heads measured."""
    done = 0
    for _ in range(MAX_MEASURE_ROUNDS):
        need = {(t, part): sorted(lh for lh in cand if not measured(by_dir[t][part])[lh])
                for t, cand in candidates(by_dir, score, fraction).items() for part in ("follow", "control")}
        need = {k: v for k, v in need.items() if v}
        if not need:
            return done
        for (t, part), heads in need.items():
            answers_of = sets[t].get("answers_of") if part == "control" else None
            _merge_measured(by_dir[t][part], measure_heads(bundle, sets[t][part], heads, batch_size, answers_of), heads)
            done += len(heads)
    raise RuntimeError(f"head measurements did not settle in {MAX_MEASURE_ROUNDS} rounds")


def _merge_measured(d: dict, new: torch.Tensor, heads: list[tuple[int, int]]) -> None:
    """Put :func:`measure_heads`'s values of ``heads`` into the scores ``d``: per sample, their
    mean and standard error, and ``d["fast"]`` (an estimate the measurement replaces)."""
    samples = d["exact_samples"].clone()
    for lh in heads:
        samples[:, lh[0], lh[1]] = new[:, lh[0], lh[1]]
        if "fast" in d:
            d["fast"][lh] = float(new[:, lh[0], lh[1]].mean())
    _set_exact(d, samples)


def passes_table(passes: dict[str, float]) -> pd.DataFrame:
    """:func:`score_all`'s ``passes_per_sample`` as one row per scorer (``scorer``, ``passes per
    sample``); a scorer the chapter did not run (exhaustive ablation off: 0 passes) gets None,
    which the book's tables print as a dash, not as a cost of zero."""
    return pd.DataFrame([{"scorer": k, "passes per sample": float(v) if v else None} for k, v in passes.items()])


def reference_score(spec) -> str:
    """The score the chapters rank heads by: exhaustive ablation, or the fast scorer without it."""
    return "ablation" if spec.exhaustive else "fast"


def top_heads(scores: np.ndarray, fraction: float) -> list[tuple[int, int]]:
    """The ``ceil(fraction * n_heads)`` highest-scoring heads as ``(layer, head)``, best first."""
    k = max(1, int(np.ceil(fraction * scores.size)))
    flat = np.argsort(-scores, axis=None, kind="stable")[:k]
    return [tuple(int(v) for v in np.unravel_index(i, scores.shape)) for i in flat]


def agreement(a: np.ndarray, b: np.ndarray, fraction: float = 0.05) -> dict:
    """Spearman rank correlation over all heads and overlap of the top-``fraction`` sets."""
    from scipy.stats import spearmanr

    ta, tb = set(top_heads(a, fraction)), set(top_heads(b, fraction))
    return {"spearman": float(spearmanr(a.ravel(), b.ravel()).statistic),
            "top_overlap": len(ta & tb) / len(ta), "k": len(ta)}


def sparsity_curve(scores: np.ndarray) -> pd.DataFrame:
    """Cumulative share of the total positive effect carried by the top heads, by fraction of heads."""
    s = np.sort(np.clip(scores.ravel(), 0, None))[::-1]
    total = s.sum() or 1.0
    return pd.DataFrame({"fraction_of_heads": np.arange(1, s.size + 1) / s.size, "share_of_effect": np.cumsum(s) / total})


def share_in_top(curve: pd.DataFrame, fraction: float) -> float:
    """Share of the positive effect carried by the top ``fraction`` of heads (from :func:`sparsity_curve`)."""
    inside = curve[curve["fraction_of_heads"] <= fraction + 1e-9]["share_of_effect"]
    return float(inside.max()) if len(inside) else 0.0


def control_answers(tokenizer, conflicts) -> Callable:
    """``answers_of`` for single-modality controls: each control is scored on the answer pair
    of the conflict it was derived from (its own answer against the other modality's), so
    that a head's control effect is in the same units as its following effect."""
    parent = {it.uid: it for it in conflicts}
    return lambda c: answer_tokens(tokenizer, parent[c.uid.rsplit("/", 1)[0]])


def matched_controls(conflicts) -> list:
    """Each conflict's single-modality control in its own direction (image-only for follow-image)."""
    from mfutils.findings.evaluation import derive_controls

    return [c for it in conflicts for c in derive_controls(it) if c.kind == f"{it.target}_only"]


def selection_sets(bundle, items) -> dict[str, dict]:
    """Per direction the items heads are chosen on: ``{"follow": conflicts, "control": their
    matched controls (the i-th control is the i-th conflict's), "answers_of": the controls'
    answer pairs}``."""
    sets = {}
    for t in ("image", "text"):
        conflicts = [it for it in items if it.target == t]
        controls = matched_controls(conflicts)
        if len(controls) != len(conflicts):
            raise ValueError(f"{len(conflicts)} {t} conflicts but {len(controls)} matched controls")
        sets[t] = {"follow": conflicts, "control": controls, "answers_of": control_answers(bundle.tokenizer, conflicts)}
    return sets


def score_directions(bundle, items, batch_size: int, exhaustive: bool, fraction: float) -> tuple[dict[str, dict], int]:
    """:func:`score_all` per direction, on the conflicts and on their matched controls, then
    :func:`complete_measurements`.

    Returns ``({target: {"follow": scores, "control": scores}}, heads measured by the completion)``."""
    out, sets = {}, selection_sets(bundle, items)
    for t, s in sets.items():
        out[t] = {"follow": score_all(bundle, s["follow"], batch_size, exhaustive, fraction),
                  "control": score_all(bundle, s["control"], batch_size, exhaustive, fraction, answers_of=s["answers_of"])}
    completed = complete_measurements(bundle, sets, out, "ablation" if exhaustive else "fast", fraction, batch_size)
    return out, completed


def ig_over(bundle, items, batch_size: int, answers_of=None) -> np.ndarray:
    """``(L, H)`` the fast scorer's integrated gradients (:func:`ig_scores`) over ``items``
    (batch means weighted by batch size), without its shortlist."""
    ad = bundle.adapter
    answers_of = answers_of or (lambda it: answer_tokens(bundle.tokenizer, it))
    acc, n = torch.zeros(ad.n_layers, ad.n_heads), 0
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
        acc += ig_scores(ad, model_metric(bundle, batch, [answers_of(it) for it in chunk]), IG_STEPS) * len(chunk)
        n += len(chunk)
    return (acc / n).numpy()


def split_selection(bundle, items, by_dir: dict[str, dict], score: str, fraction: float,
                    batch_size: int) -> list[dict]:
    """Rule of 2026-12-06 (:func:`mfutils.findings.rules.selection_splits`): the head selection
    repeated on disjoint parts of the selection conflicts. Each part reads only its own samples:
    every exact measurement ``by_dir`` already holds, restricted to the part's samples; the fast
    scorer's integrated gradients on the part, its shortlist measured there; then
    :func:`complete_measurements` on the part. ``by_dir`` is not changed.

    Returns per part ``{"split": j, "samples": {target: n}, "measured": heads measured for it,
    "heads": its arbitration heads at ``fraction``}``; none (an empty list) when a direction has
    fewer than 3 conflicts per part."""
    from mfutils.findings import rules

    sets = selection_sets(bundle, items)
    if min(len(s["follow"]) for s in sets.values()) < 3 * rules.STABILITY_SPLITS:
        return []
    parts = {t: rules.selection_splits(len(s["follow"])) for t, s in sets.items()}
    out = []
    for j in range(rules.STABILITY_SPLITS):
        sub_sets, sub, work = {}, {}, 0
        for t, s in sets.items():
            idx = parts[t][j]
            sub_sets[t] = {"follow": [s["follow"][i] for i in idx], "control": [s["control"][i] for i in idx],
                           "answers_of": s["answers_of"]}
            sub[t] = {}
            for part in ("follow", "control"):
                d: dict = {}
                _set_exact(d, by_dir[t][part]["exact_samples"][torch.as_tensor(idx)].clone())
                if score == "ablation":  # exhaustive: every head is measured on every sample
                    d[score] = d["ablation"]
                else:
                    answers_of = sub_sets[t]["answers_of"] if part == "control" else None
                    ig = ig_over(bundle, sub_sets[t][part], batch_size, answers_of)
                    k = min(ig.size, SHORTLIST_FACTOR * n_top(ig.size, fraction))
                    todo = [lh for lh in top_heads(np.abs(ig), k / ig.size)[:k] if not measured(d)[lh]]
                    if todo:
                        _merge_measured(d, measure_heads(bundle, sub_sets[t][part], todo, batch_size, answers_of), todo)
                        work += len(todo)
                    d["fast"] = np.where(measured(d), d["ablation"], ig)
                sub[t][part] = d
        work += complete_measurements(bundle, sub_sets, sub, score, fraction, batch_size)
        out.append({"split": j + 1, "samples": {t: len(sub_sets[t]["follow"]) for t in sets}, "measured": work,
                    "heads": arbitration_heads(sub, score, fraction)})
    return out


#: the per-direction scores chapter 04 saves (``scores.npz``) and chapter 05 reads back
SAVED_SCORES = ("ablation", "ablation_se", "fast", "attribution", "direct")


def save_scores(path, by_dir: dict[str, dict]) -> None:
    """:func:`score_directions`'s arrays as one ``.npz`` (keys ``{target}_{part}_{score}``)."""
    np.savez(path, **{f"{t}_{part}_{k}": by_dir[t][part][k] for t in by_dir for part in ("follow", "control")
                      for k in SAVED_SCORES})


def load_scores(path) -> dict[str, dict]:
    """:func:`save_scores`'s file as :func:`score_directions`'s dict (without pass counts)."""
    with np.load(path) as z:
        out: dict[str, dict] = {}
        for key in z.files:
            t, part, k = key.split("_", 2)
            out.setdefault(t, {}).setdefault(part, {})[k] = z[key]
    return out


def specificity(follow: dict, control: dict, score: str = "ablation") -> tuple[np.ndarray, np.ndarray]:
    """``(L, H)`` specificity ``follow drop - control drop`` (by ``score``, for display) and the
    *arbitration heads* of one direction (rule 04-specific, as amended on 2026-12-06): heads
    whose **exactly measured** following drop is positive and exceeds their exactly measured
    control drop by more than twice the noise (:func:`mfutils.findings.rules.measured_arbitration_heads`).
    A head only estimated (no standard error) is never one: until 2026-12-06 a missing standard
    error counted as zero, so an estimate above zero passed."""
    from mfutils.findings import rules

    diff = follow[score] - control[score]
    flags = rules.measured_arbitration_heads(follow["ablation"], follow["ablation_se"], control["ablation"], control["ablation_se"])
    return diff, flags & (np.nan_to_num(follow["ablation"], nan=0.0) > 0)


def arbitration_ranking(by_dir: dict[str, dict], score: str) -> np.ndarray:
    """``(L, H)`` the score chapter 05 ranks heads by: a head's specificity in the direction
    where it is largest (so a head that serves one modality is not cancelled by the other);
    heads that are arbitration heads in neither direction rank below every one that is."""
    diffs, flags = zip(*(specificity(d["follow"], d["control"], score) for d in by_dir.values()))
    # an arbitration head is ranked by its measured specificity
    exact = [np.where(f, d["follow"]["ablation"] - d["control"]["ablation"], x) for f, d, x in zip(flags, by_dir.values(), diffs)]
    best = np.max(np.stack(exact), 0)
    is_arb = np.any(np.stack(flags), 0)
    return np.where(is_arb, best, np.minimum(best, 0) - (np.abs(best).max() + 1))


def arbitration_heads(by_dir: dict[str, dict], score: str, fraction: float) -> list[tuple[int, int]]:
    """The top-``fraction`` heads of :func:`arbitration_ranking` that are arbitration heads
    (fewer than the fraction when fewer qualify)."""
    ranking = arbitration_ranking(by_dir, score)  # positive exactly for the arbitration heads
    return [lh for lh in top_heads(ranking, fraction) if ranking[lh] > 0]


def agreement_above_noise(fast: np.ndarray, exact: np.ndarray, se: np.ndarray, fraction: float) -> dict:
    """The fast scorer against exhaustive ablation over the heads whose ablation effect exceeds
    twice its standard error: Pearson, Spearman, and the overlap of the top-``fraction`` sets
    (over all heads)."""
    from scipy.stats import pearsonr, spearmanr

    keep = np.abs(exact) > 2 * se
    ta, tb = set(top_heads(exact, fraction)), set(top_heads(fast, fraction))
    enough = keep.sum() >= 3
    return {"heads above noise": int(keep.sum()),
            "pearson": float(pearsonr(fast[keep], exact[keep]).statistic) if enough else float("nan"),
            "spearman": float(spearmanr(fast[keep], exact[keep]).statistic) if enough else float("nan"),
            "top_overlap": len(ta & tb) / len(ta), "k": len(ta)}


def fast_agreement(bundle, items, batch_size: int, fraction: float, n_per_direction: int) -> tuple[dict, dict]:
    """Rule 04-fast on a subset: per direction, exhaustive single-head ablation and the fast
    scorer on the same first ``n_per_direction`` conflicts (:func:`agreement_above_noise`).
    Returns ``(agreement per direction, passes per sample)``: the chapter reports the agreement
    itself, not only ``make bench``."""
    out, passes = {}, {}
    for t in ("image", "text"):
        subset = [it for it in items if it.target == t][:n_per_direction]
        s = score_all(bundle, subset, batch_size, exhaustive=True, fraction=fraction)
        out[t] = {"samples": len(subset), **agreement_above_noise(s["fast"], s["ablation"], s["ablation_se"], fraction)}
        passes = s["passes_per_sample"]
    return out, passes


def verdicts(by_dir: dict[str, dict], agree: dict[str, dict], n_layers: int, fraction: float = 0.05,
             score: str = "ablation", passes: dict | None = None) -> pd.DataFrame:
    """Rules 04-sparse, 04-specific, 04-depth and 04-fast of :data:`mfutils.findings.rules.RULES`.

    ``by_dir``: :func:`score_directions`; ``agree[target]``: :func:`agreement_above_noise` of
    the fast scorer against exhaustive ablation (on all samples, or :func:`fast_agreement`'s
    subset; empty: not measured); ``score``: the reference score; ``passes``: passes per sample
    of the run ``agree`` comes from (default: ``by_dir``'s)."""
    from mfutils.findings import rules

    rows = []
    r = rules.rule("04-sparse")
    shares = {t: share_in_top(sparsity_curve(d["follow"][score]), fraction) for t, d in by_dir.items()}
    verdict, none = rules.combine_directions({t: "reproduced" if v >= r.threshold else "not reproduced" for t, v in shares.items()})
    rows.append(rules.verdict_row(r, ", ".join(f"{t}: top {fraction:.0%} carry {v:.0%} of the positive effect"
                                               for t, v in shares.items()) + (f"; {none}" if none else ""), verdict))

    r = rules.rule("04-specific")
    parts, vs = [], {}
    for t, d in by_dir.items():
        top = top_heads(best_available(d["follow"], score), fraction)
        flags = specificity(d["follow"], d["control"], score)[1]
        both = measured(d["follow"]) & measured(d["control"])
        share = float(np.mean([flags[lh] for lh in top]))
        parts.append(f"{t}: {share:.0%} of the top {len(top)} heads ({sum(bool(both[lh]) for lh in top)} measured exactly)")
        vs[t] = "reproduced" if share >= r.threshold else "not reproduced"
    verdict, none = rules.combine_directions(vs)
    rows.append(rules.verdict_row(r, ", ".join(parts) + (f"; {none}" if none else ""), verdict))

    r = rules.rule("04-depth")
    heads = arbitration_heads(by_dir, score, fraction)
    if heads:
        depths = rules.depth(np.array([l for l, _ in heads]), n_layers)
        med = float(np.median(depths))
        inside = r.band[0] <= med <= r.band[1]
        rows.append(rules.verdict_row(r, f"{len(heads)} heads in layers {sorted({l for l, _ in heads})} of 0–{n_layers - 1}; "
                                         f"median depth {med:.2f}", "reproduced" if inside else "not reproduced"))
    else:
        rows.append(rules.verdict_row(r, "no head passes the specificity rule", "not measurable"))

    r = rules.rule("04-fast")
    if agree:
        d0 = passes or next(iter(by_dir.values()))["follow"]["passes_per_sample"]
        ratio = d0["ablation"] / d0["fast"]
        ok = (all(a["spearman"] >= r.threshold and a["top_overlap"] >= rules.FAST_OVERLAP for a in agree.values())
              and ratio >= rules.FAST_SPEEDUP)
        rows.append(rules.verdict_row(r, "; ".join(f"{t}: Spearman {a['spearman']:.2f}, Pearson {a['pearson']:.2f} over "
                                                   f"{a['heads above noise']} heads, top-{fraction:.0%} overlap {a['top_overlap']:.0%}"
                                                   + (f" (on {a['samples']} samples)" if "samples" in a else "")
                                                   for t, a in agree.items()) + f"; {ratio:.1f}× fewer passes",
                                      "met" if ok else "not met"))
    else:
        rows.append(rules.verdict_row(r, "no exhaustive ablation to compare with", "not measured"))
    return pd.DataFrame(rows)
