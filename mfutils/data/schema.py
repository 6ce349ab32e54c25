"""The one item schema every data source is converted into.

A synthetic sample and a row of the paper's MC² files both become an :class:`Item`, so the
prompt builder, the metrics and the chapters never care where an item came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["conflict", "consistent", "image_only", "text_only"]
Target = Literal["image", "text"]
KINDS: tuple[str, ...] = ("conflict", "consistent", "image_only", "text_only")
TARGETS: tuple[str, ...] = ("image", "text")


class ItemError(ValueError):
    """A data row that cannot become an :class:`Item`; the message names the row and why."""


@dataclass(frozen=True)
class Item:
    """One prompt with the answers each modality supports.

    ``image_ref`` is ``None`` for text-only items, ``"synthetic:<colour>:<shape>:<seed>"`` for
    generated images (rendered on demand, see :func:`mfutils.data.synthetic.render_image`), or a
    path to an image file. ``target`` is the modality the instruction names (``None`` for the
    single-modality controls, which carry no instruction).
    """

    uid: str
    kind: Kind
    question: str
    image_ref: str | None
    context: str | None
    target: Target | None
    instruction: str | None
    answer_image: str | None
    answer_text: str | None
    candidates_image: tuple[str, ...] = ()
    candidates_text: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} not in {KINDS}")
        if self.target is not None and self.target not in TARGETS:
            problems.append(f"target {self.target!r} not in {TARGETS}")
        if self.kind in ("conflict", "consistent"):
            if self.image_ref is None or self.context is None:
                problems.append(f"a {self.kind} item needs both an image and a text context")
            if self.target is None or not self.instruction:
                problems.append(f"a {self.kind} item needs an instruction and its target")
            if not self.answer_image or not self.answer_text:
                problems.append("answer_image and answer_text must be non-empty")
            if self.kind == "conflict" and self.answer_image and self.answer_text and (
                _norm(self.answer_image) == _norm(self.answer_text)
            ):
                problems.append("a conflict item needs different image and text answers")
        if self.kind == "image_only" and (self.image_ref is None or not self.answer_image):
            problems.append("an image_only item needs an image and answer_image")
        if self.kind == "text_only" and (self.context is None or not self.answer_text):
            problems.append("a text_only item needs a context and answer_text")
        if not self.question:
            problems.append("question must be non-empty")
        if problems:
            raise ItemError(f"item {self.uid!r}: " + "; ".join(problems))

    @property
    def following_answer(self) -> str:
        """The answer the instruction (or, for controls, the only modality) asks for."""
        if self.kind == "image_only":
            return self.answer_image  # type: ignore[return-value]
        if self.kind == "text_only":
            return self.answer_text  # type: ignore[return-value]
        return self.answer_image if self.target == "image" else self.answer_text  # type: ignore[return-value]

    @property
    def competitor_answer(self) -> str | None:
        """The other modality's answer (``None`` for single-modality controls)."""
        if self.kind in ("image_only", "text_only"):
            return None
        return self.answer_text if self.target == "image" else self.answer_image

    def answer_candidates(self, modality: Target) -> tuple[str, ...]:
        """All accepted surface forms of one modality's answer, the answer itself first."""
        main = self.answer_image if modality == "image" else self.answer_text
        extra = self.candidates_image if modality == "image" else self.candidates_text
        out = [main] if main else []
        out += [c for c in extra if c and c not in out]
        return tuple(out)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "Item":
        row = dict(row)
        row["candidates_image"] = tuple(row.get("candidates_image") or ())
        row["candidates_text"] = tuple(row.get("candidates_text") or ())
        return cls(**row)


def _norm(word: str) -> str:
    return word.strip().lower()
