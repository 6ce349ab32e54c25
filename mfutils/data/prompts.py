"""The paper's prompt, cut into the token groups its knockouts cut between.

The user turn (after the image) is, per the paper's published items::

    Text context: {context}
    {modality instruction}
    {question}
    Answer the question using a single word or phrase. The answer is

The last sentence is the *constraint* (S_constrain). A prompt is kept as an ordered list of
named text segments so that every family's adapter can map each segment to token positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfutils.data.schema import Item

CONSTRAINT = "Answer the question using a single word or phrase. The answer is"
CONTEXT_LABEL = "Text context:"

#: The paper's two modality instructions, verbatim (paper-notes.md, "Task and data").
PAPER_INSTRUCTIONS = {
    "text": (
        "In case there is an inconsistency between the Text Context and the input image content, "
        "you must rely on the text context rather than the input image content."
    ),
    "image": (
        "In case there is an inconsistency between the Text Context and the input image content, "
        "you must rely on the image content rather than the text context."
    ),
}

#: A long neutral sentence for the position controls (paper-notes.md, finding 2).
NEUTRAL_SENTENCE = (
    "Please read everything above carefully and think about the scene before you give your "
    "final answer to the question."
)

#: Where the modality instruction goes relative to the rest of the user turn.
LAYOUTS = {
    # the paper's main layout
    "paper": ("text_context", "instruction", "question", "constraint"),
    # position control 1b: instruction after the constraint sentence
    "instruction_after_constraint": ("text_context", "question", "constraint", "instruction"),
    # position control 2: a long neutral sentence between the instruction and the question
    "neutral_after_instruction": ("text_context", "instruction", "neutral", "question", "constraint"),
}


@dataclass(frozen=True)
class PromptSegments:
    """Ordered ``(name, text)`` pieces of the user turn; ``has_image`` says if an image precedes."""

    pieces: tuple[tuple[str, str], ...]
    has_image: bool

    @property
    def user_text(self) -> str:
        return "\n".join(text for _, text in self.pieces)

    def char_spans(self) -> dict[str, tuple[int, int]]:
        """Character ``[start, end)`` of each segment inside :attr:`user_text`."""
        spans, pos = {}, 0
        for name, text in self.pieces:
            spans[name] = (pos, pos + len(text))
            pos += len(text) + 1  # the joining newline
        return spans


def build_segments(item: Item, layout: str = "paper") -> PromptSegments:
    """Cut one item into the paper's prompt segments.

    Controls (``image_only`` / ``text_only``) carry no instruction; an ``image_only`` item
    carries no text context either. An item whose ``meta`` holds an ``image_description``
    sentence gets that sentence as its first segment in place of the image (a training device of
    the pretrained organism, :attr:`mfutils.models.train_pretrained.PretrainedTrainConfig.text_steps`).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown prompt layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    texts = {
        "text_context": f"{CONTEXT_LABEL} {item.context}" if item.context else None,
        "instruction": item.instruction or None,
        "neutral": NEUTRAL_SENTENCE,
        "question": item.question,
        "constraint": CONSTRAINT,
    }
    pieces = []
    for name in LAYOUTS[layout]:
        if name == "neutral" and not item.instruction:
            continue
        if texts[name]:
            pieces.append((name, texts[name]))
    described = item.meta.get("image_description") if item.image_ref is not None else None
    if described:
        return PromptSegments((("image_description", described),) + tuple(pieces), has_image=False)
    return PromptSegments(tuple(pieces), has_image=item.image_ref is not None)
