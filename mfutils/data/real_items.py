"""Loader for the paper's real conflict items (MC²-derived JSON, images from a local COCO folder).

Format (``EchoDreamer/Modality-Following``, ``data/*.json``; see ../shared/data/README.md): a
JSON list (or JSONL, one object a line) of objects with ``image_id``, ``task``, ``context``,
``answer_img``, ``answer_text``, ``answer_img_candidate_list``, ``answer_text_candidate_list``
and ``question1..3``. ``question2`` is "<modality instruction>\\n<question>\\n<constraint>";
we split it so the prompt is rebuilt by :mod:`mfutils.data.prompts` in each family's template.
"""

from __future__ import annotations

import json
from pathlib import Path

from mfutils.data.prompts import PAPER_INSTRUCTIONS
from mfutils.data.schema import Item, ItemError

REQUIRED = ("image_id", "context", "answer_img", "answer_text", "question2")


class DataFileError(ValueError):
    """A data file that is missing, unreadable, or holds malformed rows."""


def _rows(path: Path) -> list:
    if not path.exists():
        raise DataFileError(
            f"data file {path} not found. The paper's items come from the repository "
            "EchoDreamer/Modality-Following (folder data/, commits 81b5c38 and 1369c67); "
            "see the book's 'Re-executing on a GPU' page for where to put them."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"data file {path} cannot be read: {err}") from err
    if path.suffix == ".jsonl":
        data = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as err:
                # json's own position counts within the line; the file's line is what a reader looks up
                raise DataFileError(f"{path}, line {number}: not valid JSON ({err.msg}, column {err.colno}): "
                                    f"{line[:120]!r}") from err
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, list):
        raise DataFileError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    if not data:
        raise DataFileError(f"{path} holds no items: a data file needs at least one conflict row")
    return data


def coco_path(coco_dir: Path, image_id: str) -> Path:
    """COCO 2014 file for a 12-digit id: ``train2014/COCO_train2014_<id>.jpg`` or ``val2014/...``.

    Also accepts a flat folder of ``<id>.jpg`` files.
    """
    for sub in ("val2014", "train2014"):
        p = coco_dir / sub / f"COCO_{sub}_{image_id}.jpg"
        if p.exists():
            return p
    for name in (f"{image_id}.jpg", f"COCO_val2014_{image_id}.jpg", f"COCO_train2014_{image_id}.jpg"):
        if (coco_dir / name).exists():
            return coco_dir / name
    return coco_dir / "val2014" / f"COCO_val2014_{image_id}.jpg"


def parse_row(row: dict, index: int, target: str, coco_dir: Path | None) -> Item:
    """One row -> :class:`Item`; raises :class:`ItemError` naming the row index and the reason."""
    if not isinstance(row, dict):
        raise ItemError(f"row {index}: expected an object, got {type(row).__name__}")
    missing = [k for k in REQUIRED if not row.get(k)]
    if missing:
        raise ItemError(f"row {index}: missing or empty field(s) {missing}")
    lines = [ln for ln in str(row["question2"]).split("\n") if ln.strip()]
    if len(lines) < 3:
        raise ItemError(f"row {index}: question2 should be 'instruction\\nquestion\\nconstraint', got {row['question2']!r}")
    instruction, question = lines[0].strip(), lines[1].strip()
    for key in ("answer_img_candidate_list", "answer_text_candidate_list"):
        if not isinstance(row.get(key, []), list):
            raise ItemError(f"row {index}: {key} must be a list")
    image_ref = str(coco_path(coco_dir, str(row["image_id"]))) if coco_dir else f"coco:{row['image_id']}"
    try:
        return Item(
            uid=f"mc2-{row['image_id']}-{index}",
            kind="conflict",
            question=question,
            image_ref=image_ref,
            context=str(row["context"]).strip(),
            target=target,  # type: ignore[arg-type]
            instruction=instruction,
            answer_image=str(row["answer_img"]).strip(),
            answer_text=str(row["answer_text"]).strip(),
            candidates_image=tuple(row.get("answer_img_candidate_list") or ()),
            candidates_text=tuple(row.get("answer_text_candidate_list") or ()),
            meta={"task": row.get("task"), "image_id": row["image_id"], "row": index,
                  "paper_instruction": instruction == PAPER_INSTRUCTIONS.get(target)},
        )
    except ItemError as err:
        raise ItemError(f"row {index}: {err}") from err


def load_items(path: str | Path, coco_dir: str | Path | None = None, target: str | None = None,
               swap_target: bool = False) -> list[Item]:
    """Load a paper item file; every malformed row is reported (index and reason) before failing.

    ``target``: the instruction target ("image"/"text"); by default read from the file name
    (``following_vision`` / ``following_text``). ``swap_target`` rebuilds each item with the
    other modality's instruction (the paper's sentence), e.g. to get text-following items from
    a vision-following file.
    """
    path = Path(path)
    if not path.exists():  # before the name is read: a typo is a missing file, not a bad name
        _rows(path)
    if target is None:
        name = path.name
        target = "image" if "following_vision" in name else "text" if "following_text" in name else None
        if target is None:
            raise DataFileError(f"{path}: cannot tell the instruction target from the name; pass target=")
    if swap_target:
        target = "text" if target == "image" else "image"
    coco = Path(coco_dir) if coco_dir else None
    if coco is not None and not coco.is_dir():
        raise DataFileError(f"COCO folder {coco} does not exist; download COCO 2014 images (see the GPU guide)")
    items, errors = [], []
    for i, row in enumerate(_rows(path)):
        try:
            item = parse_row(row, i, target, coco)
            if swap_target:
                item = _with_instruction(item, target)
            items.append(item)
        except ItemError as err:
            errors.append(str(err))
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DataFileError(f"{path}: {len(errors)} malformed row(s):\n  {shown}{more}")
    return items


def _with_instruction(item: Item, target: str) -> Item:
    d = item.to_dict()
    d.update(target=target, instruction=PAPER_INSTRUCTIONS[target])
    return Item.from_dict(d)

