"""Estimated GPU memory and run time of each chapter on the supported 7B-class models.

Estimates, not measurements: parameter counts and architecture numbers are the published
ones of each checkpoint; passes per sample follow the chapters' code (the same formulas the
chapters count); the throughput is an assumption stated in :data:`ASSUMED_TFLOPS`. The GPU
page labels every number here as an estimate until a run measures it.
"""

from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType

import pandas as pd

from mfutils.engine.incremental import mean_layer_share
from mfutils.models.cards import CARDS, TEXT_TOKENS, ModelCard  # noqa: F401  (the GPU page reads them here)

#: effective bf16 throughput assumed for an H100-class GPU running batched inference with
#: eager attention hooks (well below peak on purpose)
ASSUMED_TFLOPS = 150.0
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


#: tokens from a knockout target group's first position to the prompt's end (what the
#: incremental engine recomputes), assumed for the paper's layout: the text context opens the
#: text, the paper's long instruction sentence follows it, the constraint and the chat
#: template close it
SUFFIX_TOKENS = {"text": 100, "text_context": 100, "instruction": 80, "constraint": 25, "last": 1}
#: the GPU every plan must fit (GiB)
GPU_GIB = 80.0


@lru_cache(maxsize=None)
def _defaults(chapter: str) -> MappingProxyType:
    """The chapter notebook's own parameter defaults (read once: every estimate needs them)."""
    from mfutils.book.chapters import notebook_defaults

    return MappingProxyType(notebook_defaults(chapter))


def passes_per_sample(chapter: str, n_layers: int, total_heads: int, params: dict, seq_len: int | None = None,
                      checkpointed: bool = False) -> float:
    """Forward-pass equivalents per conflict sample (a backward pass counts as two), as the
    chapter's code runs them with ``params`` (a chapter's parameters; the notebook's own
    defaults, :func:`mfutils.book.chapters.notebook_defaults`, for any it lacks).

    ``seq_len``: the prompt's tokens; with it, chapter 01's knockouts count the share of a pass
    the incremental engine recomputes (:data:`SUFFIX_TOKENS`), without it each counts as a
    full pass. Exhaustive head ablation counts each head from its own layer on.
    ``checkpointed``: chapters 04-05's gradient passes recompute their layers (as on a GPU,
    :func:`mfutils.engine.memory.checkpoints`), one more forward pass each."""
    params = {**_defaults(chapter), **params}
    controls = 2  # the per-model filter reads each conflict's image-only and text-only versions
    if chapter == "00_behaviour":
        # plus the unseen-phrasing table: 24 sentences x n/8 conflicts = 1.5 passes per sample
        return 1 + controls + 1.5
    if chapter == "01_shallow_routing":
        from mfutils.findings.routing import (CONTROL_EDGES, FIGURE2_EDGES, FIGURE3_EDGES, LAST_EDGES, LAYOUT_FIGURES,
                                              POSITION_EDGES, WIDE_EDGES)

        def sweep(edges) -> float:
            # the incremental engine: one clean pass, then each (edge, layer) knockout recomputes
            # the target group's suffix through the layers from the cut on
            if seq_len is None:
                return 1 + len(edges) * n_layers  # counted as full passes
            layers = n_layers * mean_layer_share(n_layers)  # a one-layer window at each layer
            return 1 + sum(SUFFIX_TOKENS[target] / seq_len * layers for _, target in edges)

        p = sweep(list(dict.fromkeys(FIGURE2_EDGES + FIGURE3_EDGES + CONTROL_EDGES + LAST_EDGES)))
        if params.get("wide_window"):
            # the routes into the instruction again (a wider window starts a few layers lower: not counted)
            p += sweep(WIDE_EDGES) - 1
        if params.get("patching"):
            # each conflict's donor run, then per layer its instruction tokens and its last position
            # recomputed from there on, as a knockout into each group is
            p += 1 + sweep([("text_context", "instruction"), ("vision", "last")]) - 1
        if params["layout_controls"]:
            # on the first layout_samples conflicts per direction only
            share = min(1.0, params["layout_samples"] / params["n_samples"])
            p += share * len(LAYOUT_FIGURES) * sweep(POSITION_EDGES)
        if params["saliency"]:
            p += 3
        return p + controls
    # the failure pool (mfutils.findings.evaluation.failure_pool) on synthetic data, the parameter files'
    # default: the analysis conflicts plus HELDOUT_FACTOR x n_samples held-out-paraphrase ones,
    # so per analysis conflict (there are 2 x n_samples) HELDOUT_FACTOR / 2 more, every one of
    # them filtered by its two controls
    from mfutils.findings.evaluation import HELDOUT_FACTOR

    pool = 1 + HELDOUT_FACTOR / 2
    if chapter == "02_deep_arbitration":
        # filter, lens at the last position; the pool (filtered whole, the conflicts again) read
        # at the instruction tokens; target probe fit + test; the seed+1000 pool, filtered, read
        # for the decision probe's fit
        return controls + 1 + 2 * (pool * controls + pool) + 2
    if chapter == "03_mlp_inertia":
        # the pool filtered and traced, the MLP means fitted on the seed+1000 conflicts, the pool
        # ablated, and the general-ability controls (two per conflict of the pool's first half)
        # read clean and ablated
        return pool * (controls + 1) + 1 + pool + 2 * pool
    if chapter in ("04_sparse_heads", "05_causal_interventions"):
        from mfutils.findings.head_scores import BACKWARD_COST, IG_STEPS, fast_passes

        # per sample: its conflict and its matched control are each scored by the fast scorer,
        # plain attribution and the direct score, and by exhaustive ablation when asked
        one = fast_passes(total_heads, params["top_fraction"], n_layers) + (1 + BACKWARD_COST) + 1
        if checkpointed:
            one += IG_STEPS + 1  # each gradient pass (IG's steps, plain attribution) recomputes its layers
        # the incremental engine reruns each head's ablation from its own layer: on average
        # (L + 1) / (2 L) of a pass (head_scores.score_all counts the same)
        exhaustive = 1 + total_heads * mean_layer_share(n_layers)
        scoring = 2 * (one + (exhaustive if params["exhaustive"] else 0))
        if chapter == "04_sparse_heads":
            # the selection splits (head_scores.split_selection): each sample lies in one split,
            # scored there once more by the fast scorer (its shortlist counted whole, though most
            # of it is measured already); an exhaustive run reuses its measurements
            splits = 0 if params["exhaustive"] else 2 * fast_passes(total_heads, params["top_fraction"], n_layers)
            return scoring + splits + controls
        from mfutils.findings.causal import ALPHAS, FRACTIONS

        fractions, n_random, alphas = len(FRACTIONS), params["n_random"], len(ALPHAS)
        blocking = (1 + fractions * (1 + n_random)) * 2  # conflicts and their controls
        from mfutils.findings.rules import STABILITY_SPLITS

        # each selection split's set: baseline and set on conflicts and controls, its random sets on conflicts
        blocking += STABILITY_SPLITS * (4 + n_random)
        # amplification runs over the failure pool (filtered whole, the conflicts again); alpha = 1
        # is the clean pass. Its heads come from chapter 4's scores, read from chapter 4's
        # finished run (the runner executes chapter 4 first; mfutils.book.crossrefs.chapter4_scores)
        return controls + blocking + pool * (controls + alphas)
    raise ValueError(f"unknown chapter {chapter!r}")


def estimate(card: ModelCard, chapter: str, n_samples: int, batch_size: int, dtype: str = "bfloat16",
             params: dict | None = None, gpu_gib: float = GPU_GIB) -> dict:
    """Peak GPU memory (GiB) and run time (minutes) of one chapter on ``card``, on a GPU of
    ``gpu_gib``.

    Memory: the weights, plus the activations of the batch the runner would run
    (:func:`mfutils.engine.memory.cap_batch`: ``batch_size``, or fewer rows where the GPU would not
    hold it). Chapter 01's saliency keeps every layer's activations, by Korthikanti et al.
    (2022)'s per-layer formula; chapters 04/05's attribution checkpoints its layers (each
    layer's input plus one layer's activations, and one more forward pass per gradient pass);
    forward-only chapters keep about two layers' worth (:mod:`mfutils.engine.memory`).
    """
    from mfutils.engine import memory

    params = {**_defaults(chapter), **(params or {})}
    t = card.image_tokens + TEXT_TOKENS
    b = BYTES[dtype]
    weights = card.params_b * 1e9 * b
    backward = memory.takes_gradients(chapter, params)
    shape = memory.Shape(card.n_layers, card.hidden, card.n_heads)
    ckpt = memory.checkpoints(chapter)
    per_row = memory.row_bytes(shape, t, b, gradient=backward, checkpointed=ckpt)
    rows = memory.rows_that_fit(gpu_gib * 2**30 - weights, per_row, batch_size)
    passes = passes_per_sample(chapter, card.n_layers, card.n_layers * card.n_heads, params, seq_len=t,
                               checkpointed=ckpt)
    samples = 2 * n_samples  # both instruction directions
    flops = 2 * card.lm_params_b * 1e9 * t * passes * samples
    return {"model": card.model_id, "chapter": chapter, "samples": n_samples, "passes per sample": round(passes, 1),
            "batch": rows, "GPU memory (GiB, est.)": round((weights + rows * per_row) / 2**30, 1),
            "time (min, est.)": round(flops / (ASSUMED_TFLOPS * 1e12) / 60, 1)}


def estimates_table(chapters: dict[str, dict], batch_size: int = 8, dtype: str = "bfloat16",
                    n_samples: int | None = None) -> pd.DataFrame:
    """Every (model, chapter) estimate; ``chapters`` maps chapter -> its parameters;
    ``n_samples`` replaces each chapter's own sample count when given."""
    rows = [estimate(card, ch, n_samples or int(p.get("n_samples", 128)), batch_size, dtype, p)
            for card in CARDS for ch, p in chapters.items()]
    return pd.DataFrame(rows)


#: the project's target for the whole book on 1,000 items for one 7B model (minutes, one GPU)
BOOK_TARGET_MIN = 60.0


def items_within(book_minutes: pd.Series, items: int = 1000, minutes: float = BOOK_TARGET_MIN) -> pd.Series:
    """Per model, the most conflict items per direction whose whole book fits ``minutes``, from
    ``book_minutes`` estimated on ``items`` items (every chapter's time is linear in them)."""
    return (minutes / book_minutes * items).astype(int)


def plan_summary(est: pd.DataFrame, book_minutes: pd.Series, chapters: dict[str, dict]) -> str:
    """A paragraph on the plan, from the tables it describes: whether every chapter fits the GPU,
    whether the book meets :data:`BOOK_TARGET_MIN` on 1,000 items, which chapters cost most,
    and what exhaustive head ablation multiplies chapters 4 and 5 by."""
    from mfutils.book.chapters import entry

    fits = bool((est["GPU memory (GiB, est.)"] <= GPU_GIB).all())
    low = est[est["batch"] < est["batch"].max()]
    capped = [f"{m.split('/')[-1]} (chapter{'s' if len(g) > 1 else ''} "
              f"{', '.join(str(entry(c).number) for c in sorted(g['chapter']))})" for m, g in low.groupby("model")]
    per_chapter = est.groupby("chapter")["time (min, est.)"].sum().sort_values(ascending=False)

    top = [f"{entry(c).heading.split(' · ')[1].lower()} (chapter {entry(c).number})" for c in per_chapter.index[:2]]
    met = book_minutes[book_minutes <= BOOK_TARGET_MIN]
    fit = items_within(book_minutes)
    exhaustive = estimates_table({c: {**p, "exhaustive": True} for c, p in chapters.items()})
    ratio = {c: exhaustive.loc[exhaustive["chapter"] == c, "time (min, est.)"].sum()
             / max(est.loc[est["chapter"] == c, "time (min, est.)"].sum(), 1e-9)
             for c in ("04_sparse_heads", "05_causal_interventions") if c in chapters}
    text = [("Every chapter of every family fits one " if fits else "Not every chapter fits one ")
            + f"{GPU_GIB:.0f} GB GPU at its defaults"
            + (f"; the cap lowers the batch for {', '.join(capped)}." if capped else ".")]
    within = (f"{len(met)} of the {len(book_minutes)} models run it within an hour" if len(met)
              else "none of the models runs it within an hour")
    text.append(f"On 1,000 items the whole book takes {book_minutes.min():,.0f}–{book_minutes.max():,.0f} minutes "
                f"(estimated): {within}. In an hour it runs on {fit.min():,}–{fit.max():,} items "
                "per direction (estimated; time grows linearly with the items)."
                + f" The most expensive chapters are {' and '.join(top)}.")
    changed = {c: r for c, r in ratio.items() if abs(r - 1) >= 0.05}
    if changed:
        text.append("With `exhaustive: true` the time of " + " and ".join(
            f"chapter {entry(c).number} grows {r:.1f}-fold" for c, r in changed.items()) + ".")
    elif ratio:
        text.append("`exhaustive: true` leaves the time of chapters 4 and 5 about as it is.")
    return " ".join(text)
