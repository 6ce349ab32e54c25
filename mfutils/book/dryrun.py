"""The dry run: check parameters, model availability and data before any heavy work.

    python -m mfutils check [NAME ...] [-p key value ...] [--params-file F]

It builds every selected chapter's spec (unknown or ill-typed parameters fail), checks the
model as :func:`mfutils.models.loading.load_model` would but without reading its weights, and loads
the chapters' items, checking that every image file is there. ``runner execute`` runs the
same checks first, so a long GPU session never starts on a typo.
"""

from __future__ import annotations

from pathlib import Path

from mfutils.book.chapters import all_parameters, chapter_spec
from mfutils.runs.params import ParameterError


class DryRunError(RuntimeError):
    """One or more problems found before any heavy work; the message lists each."""


def _refuse(problems: list[str]) -> None:
    raise DryRunError("dry run found problems:\n  - " + "\n  - ".join(problems))


def dry_run(chapters: list[str], parameters: dict) -> list[str]:
    """Check ``parameters`` for ``chapters``; returns a report (one line per check) or raises."""
    from mfutils.findings.evaluation import conflict_items
    from mfutils.models.loading import check_model

    problems, report = [], []
    unknown = sorted(set(parameters) - all_parameters())
    if unknown:
        problems.append(f"unknown parameter(s) {unknown}; known: {sorted(all_parameters())}")
    specs = []
    for chapter in chapters:
        try:
            specs.append(chapter_spec(chapter, **parameters))
        except (ParameterError, TypeError, ValueError) as err:
            problems.append(f"{chapter}: {err}")
    if problems:  # before the model: building it takes a minute and a gigabyte, and cannot fix a typo
        _refuse(problems)
    if specs:
        report.append(f"parameters: ok for {len(specs)} chapter(s)")
        s = specs[0]
        try:
            _, config, _ = check_model(s.model_id, s.device, s.dtype)
            report.append(f"model: {s.model_id} ({config.model_type}) available offline on {s.device}")
        except Exception as err:  # every loader error carries its own what-to-do message
            problems.append(f"model: {err}")
        try:
            items, _ = conflict_items(s)
            missing = [it for it in items if it.image_ref and not it.image_ref.startswith("synthetic:")
                       and not Path(it.image_ref).exists()]
            if missing:
                problems.append(f"data: {len(missing)} of {len(items)} image files missing, e.g. {missing[0].image_ref} "
                                "(set coco_dir to the folder that holds the COCO images)")
            else:
                report.append(f"data: {s.data} gives {len(items)} conflict items, every image present")
        except Exception as err:  # malformed rows raise with their index and reason
            problems.append(f"data: {err}")
    if problems:
        _refuse(problems)
    return report
