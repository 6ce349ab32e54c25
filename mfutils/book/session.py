"""What every chapter does first: validate parameters, fix threads and seeds, load the model.

Threads: on small tensors PyTorch's default of one thread per core is often 10-20x slower
than one thread when another process keeps the second core busy (measured with
``scripts/benchmark.py``), so chapters set the count explicitly from ``num_threads``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from mfutils.models.loading import ModelBundle, load_model
from mfutils.runs.params import RunSpec
from mfutils.runs.results import RunWriter


@dataclass
class Session:
    spec: RunSpec
    bundle: ModelBundle
    writer: RunWriter


def configure(spec: RunSpec) -> None:
    """Threads, seeds and deterministic kernels from the spec (CPU runs are bit-reproducible)."""
    torch.set_num_threads(spec.num_threads)
    random.seed(spec.seed)
    np.random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    if spec.device == "cpu":
        torch.use_deterministic_algorithms(True)
    torch.set_grad_enabled(False)  # analyses are inference; scorers that need gradients enable them locally
    # progress bars print rates and times: they would make executed chapters differ run to run
    import transformers

    transformers.utils.logging.disable_progress_bar()


def start(spec: RunSpec) -> Session:
    """Configure, load the model, and open the run's (not yet visible) results folder.

    On a GPU the batch size is capped to what its free memory holds (:func:`mfutils.engine.memory.cap_batch`):
    the session's ``spec`` then carries the batch size that runs, the message is printed and
    kept in ``batch_cap.json`` (the batch size is not part of the results folder's digest).
    Use ``run.spec`` after this call.
    """
    from dataclasses import replace

    from mfutils.engine.memory import cap_batch, checkpoints, takes_gradients

    configure(spec)
    writer = RunWriter(spec)  # first: a second run of the same parameters is refused before loading a model
    bundle = load_model(spec.model_id, device=spec.device, dtype=spec.dtype)
    size, why = cap_batch(bundle, spec.batch_size, takes_gradients(spec.chapter, spec.to_dict()),
                          checkpoints(spec.chapter, bundle.device.type))
    if why:
        print(why)
        writer.write_json("batch_cap.json", {"requested": spec.batch_size, "ran_with": size, "why": why})
        spec = replace(spec, batch_size=size)
    return Session(spec, bundle, writer)


def description_table(desc: dict) -> "pd.DataFrame":
    """:func:`describe`'s dict as a short two-column table for the page (``setting``, ``value``):
    the model with its attention shape in one line, the data in another; keys it does not know
    (a family's extras) keep a row each, so nothing is dropped."""
    import pandas as pd

    d = dict(desc)
    rows = [("chapter", d.pop("chapter", "—"))]
    model, family = d.pop("model", "—"), d.pop("family", None)
    rows.append(("model", model if family in (None, model) else f"{model} ({family} family)"))
    if {"n_layers", "n_heads"} <= d.keys():
        L, H, kv, hd = d.pop("n_layers"), d.pop("n_heads"), d.pop("n_kv_heads", None), d.pop("head_dim", None)
        total = d.pop("total_heads", L * H)
        shape = f"{L} layers × {H} heads = {total} heads"
        extra = [f"{kv} key/value heads" if kv not in (None, H) else "", f"head size {hd}" if hd else ""]
        rows.append(("attention", shape + "".join(f"; {e}" for e in extra if e)))
    data = d.pop("data", "—")
    n, seed = d.pop("n_samples", None), d.pop("seed", None)
    rows.append(("data", f"{data}, {n} samples, seed {seed}" if n is not None else str(data)))
    results = d.pop("results", None)
    rows += [(k, v) for k, v in d.items()]
    if results is not None:
        rows.append(("results", results))
    return pd.DataFrame(rows, columns=["setting", "value"])


def describe(session: Session) -> dict:
    """A short, printable description of the run (no absolute paths, no times)."""
    s = session.spec
    return {
        "chapter": s.chapter,
        "model": s.model_id,
        **session.bundle.adapter.describe(),
        "data": s.data,
        "n_samples": s.n_samples,
        "seed": s.seed,
        "results": str(s.run_dir().relative_to(s.run_dir().parents[3])),
    }
