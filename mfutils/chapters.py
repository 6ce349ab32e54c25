"""The book's chapters: their spec classes, their notebooks' default parameters, and the
reproduction summary the front page builds from their finished results.

The front page never holds a number of its own: :func:`summary_table` rebuilds each
chapter's spec from the notebook's ``parameters`` cell (plus any overrides), finds the
run folder that spec hashes to, and reads the verdicts that run wrote.
"""

from __future__ import annotations

import ast
import json
from dataclasses import fields
from pathlib import Path

import pandas as pd

from .arbitration import ArbitrationSpec
from .behaviour import BehaviourSpec
from .causal import CausalSpec
from .head_scores import HeadsSpec
from .inertia import InertiaSpec
from .params import ParameterError, RunSpec
from .paths import project_root
from .results import IncompleteResultsError, load_run
from .routing import RoutingSpec
from .sources import SUFFIX, read_source

#: chapter -> (spec class, finding in the paper's order, short title)
CHAPTERS: dict[str, tuple[type[RunSpec], str, str]] = {
    "00_behaviour": (BehaviourSpec, "baseline", "Modality following at baseline"),
    "01_shallow_routing": (RoutingSpec, "finding 1", "Shallow routing into the instruction anchors"),
    "02_deep_arbitration": (ArbitrationSpec, "finding 2", "Deep arbitration"),
    "03_mlp_inertia": (InertiaSpec, "finding 3", "MLP inertia"),
    "04_sparse_heads": (HeadsSpec, "finding 4", "Sparse arbitration heads"),
    "05_causal_interventions": (CausalSpec, "finding 5", "Causal interventions"),
}


def notebook_path(chapter: str) -> Path:
    """The chapter's source, MyST Markdown (:mod:`mfutils.sources`)."""
    return project_root() / "notebooks" / f"{chapter}{SUFFIX}"


def notebook_defaults(chapter: str) -> dict:
    """The literal assignments of the notebook's cell tagged ``parameters``."""
    nb = read_source(notebook_path(chapter))
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell["source"])
            return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    raise ValueError(f"{notebook_path(chapter)} has no cell tagged 'parameters'")


def chapter_spec(chapter: str, **overrides) -> RunSpec:
    """The spec a papermill run of ``chapter`` with ``overrides`` (``-p`` values) would build.

    Overrides a chapter does not take (e.g. ``n_random`` for chapter 01) are ignored, as they
    are when one parameters file serves every chapter.
    """
    if chapter not in CHAPTERS:
        raise ParameterError(f"unknown chapter {chapter!r}; chapters: {sorted(CHAPTERS)}")
    spec_cls = CHAPTERS[chapter][0]
    known = {f.name for f in fields(spec_cls)} - {"chapter"}
    params = {**notebook_defaults(chapter), **{k: v for k, v in overrides.items() if k in known}}
    return spec_cls(chapter=chapter, **params)


def reproduce_command(chapter: str, overrides: dict) -> str:
    ps = " ".join(f"-p {k} {v}" for k, v in overrides.items())
    return f"python -m mfutils.runner execute {chapter[:2]}" + (f" {ps}" if ps else "")


def summary_table(**overrides) -> pd.DataFrame:
    """One row per verdict of every chapter's finished run for these parameters.

    Columns: finding, chapter, claim, paper, ours, verdict, command. A chapter with no finished
    run gets one row saying so (its verdict is ``not run``), never a stale or partial number.
    """
    rows = []
    for chapter, (_, finding, title) in CHAPTERS.items():
        spec = chapter_spec(chapter, **overrides)
        defaults = notebook_defaults(chapter)
        cmd = reproduce_command(chapter, {k: v for k, v in overrides.items() if k in defaults and defaults[k] != v})
        try:
            res = load_run(spec.run_dir()).get("results", {})
        except IncompleteResultsError as err:
            rows.append({"finding": finding, "chapter": title, "claim": "—", "paper": "—",
                         "ours": f"no finished run ({err.__class__.__name__})", "verdict": "not run", "command": cmd})
            continue
        for v in res.get("verdicts", []):
            rows.append({"finding": finding, "chapter": title, "claim": v["claim"], "paper": v.get("paper", "—"),
                         "ours": v["ours"], "verdict": v["verdict"], "command": cmd})
    return pd.DataFrame(rows)


def all_parameters() -> set[str]:
    """Every parameter name some chapter takes."""
    return {f.name for spec_cls, _, _ in CHAPTERS.values() for f in fields(spec_cls)} - {"chapter"}


def injected_parameters(namespace: dict) -> dict:
    """The chapter parameters among a page notebook's globals (its own and papermill's ``-p``)."""
    known = all_parameters()
    return {k: v for k, v in namespace.items() if k in known}


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in table["verdict"].value_counts().items()}


def plain_summary(verdict: pd.DataFrame) -> str:
    """A sentence or two, in Markdown, saying what the verdict table says (generated, never typed)."""
    n = len(verdict)
    groups = {v: verdict[verdict["verdict"] == v]["claim"].tolist() for v in verdict["verdict"].unique()}
    good = len(groups.get("reproduced", [])) + len(groups.get("met", []))
    parts = [f"**In this run the organism shows {good} of the {n} claims below.**"]
    for label in ("partly", "not reproduced", "not met", "not measured", "not measurable"):
        if groups.get(label):
            parts.append(f"*{label.capitalize()}:* " + "; ".join(c.rstrip(".") for c in groups[label]) + ".")
    return " ".join(parts)
