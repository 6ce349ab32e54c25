"""Items -> model inputs plus the token positions of each of the paper's token groups.

Works for every family through its own processor and chat template:

1. the user turn is built from :mod:`mfutils.data.prompts` segments and wrapped in the family's
   chat template (``processor.apply_chat_template``);
2. the *unexpanded* prompt is tokenized alone with character offsets, which maps each segment
   to token indices;
3. the processor builds the real inputs (the image placeholder expanded to N image tokens);
   non-image tokens of both must agree one-to-one, or we fail rather than guess spans.

Batches are right-padded, so position ``lengths[b] - 1`` is sample ``b``'s last position and
rotary positions are unaffected by padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mfutils.data.prompts import build_segments
from mfutils.data.schema import Item

#: Token groups every encoded sample carries (empty lists where a group is absent). ``template``:
#: the chat template's own tokens (role markers, system text, the generation prompt), outside the
#: user's text, without the image tokens and without the last position.
GROUPS = ("vision", "text_context", "instruction", "neutral", "question", "constraint", "text", "template", "last")


@dataclass
class Batch:
    """Model-ready inputs for a list of items.

    ``inputs``: keyword arguments for the model (``input_ids`` ``(B, T)`` etc.).
    ``spans``: per sample, group name -> sorted token positions.
    ``lengths``: ``(B,)`` number of real (non-pad) tokens; ``last`` = ``lengths - 1``.
    """

    inputs: dict[str, torch.Tensor]
    spans: list[dict[str, list[int]]]
    lengths: torch.Tensor
    items: list[Item] = field(default_factory=list)

    @property
    def last(self) -> torch.Tensor:
        return self.lengths - 1

    def __len__(self) -> int:
        return len(self.spans)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> "Batch":
        moved = {}
        for k, v in self.inputs.items():
            v = v.to(device)
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            moved[k] = v
        return Batch(moved, self.spans, self.lengths.to(device), self.items)


class EncodingError(RuntimeError):
    """The processor's tokens could not be matched to the prompt's segments."""


def chat_prompt(processor, user_text: str, has_image: bool) -> str:
    """The full prompt string in the processor's chat template, ending at the generation prompt."""
    content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": user_text}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def _token_spans(offsets, char_spans: dict[str, tuple[int, int]], shift: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, (a, b) in char_spans.items():
        a, b = a + shift, b + shift
        out[name] = [i for i, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
    return out


class UnrepresentableTextError(EncodingError, ValueError):
    """The prompt holds words the tokenizer maps to its unknown token (the tiny organism's
    word-level vocabulary); encoding them silently would feed the model ``<unk>``. ``words``:
    the unreadable words, sorted."""

    def __init__(self, message: str, words: list[str]):
        super().__init__(message)
        self.words = words


def check_representable(tokenizer, text: str, encoded, uid: str = "") -> None:
    """Raise :class:`UnrepresentableTextError` naming every word ``tokenizer`` cannot represent.

    ``encoded``: ``tokenizer(text, return_offsets_mapping=True)``. Byte-level tokenizers (every
    real model here) never produce an unknown token; a word-level one does for any word it
    was not built with.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or unk not in encoded["input_ids"]:
        return
    words = sorted({text[a:b] for t, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"]) if t == unk})
    raise UnrepresentableTextError(
        f"item {uid}: the tokenizer has no token for {', '.join(repr(w) for w in words)}; this model "
        "(the tiny organism's word-level vocabulary) cannot read that text. Rephrase it with words the model knows "
        "or use a model with a byte-level tokenizer (e.g. model_id='pretrained-organism').",
        words,
    )


def encode_one(processor, image_token_id: int, item: Item, image_loader, layout: str = "paper",
               wrapper_ids: frozenset[int] = frozenset()) -> tuple[dict, dict]:
    """Encode one item: ``(processor outputs with batch dim 1, group -> positions)``.

    ``wrapper_ids``: tokens the processor adds around the image tokens (InternVL's ``<img>``,
    ``</img>``); they belong to no text segment and to no group.
    """
    seg = build_segments(item, layout)
    prompt = chat_prompt(processor, seg.user_text, seg.has_image)
    shift = prompt.find(seg.user_text)
    if shift < 0:
        raise EncodingError(f"item {item.uid}: the chat template altered the user text")
    tok = processor.tokenizer
    plain = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
    check_representable(tok, prompt, plain, item.uid)
    seg_positions = _token_spans(plain["offset_mapping"], seg.char_spans(), shift)
    images = [image_loader(item)] if seg.has_image else None
    enc = processor(text=[prompt], images=images, return_tensors="pt", add_special_tokens=False)
    ids = enc["input_ids"][0].tolist()
    plain_ids = plain["input_ids"]
    # map plain (unexpanded) positions to expanded positions through the non-image tokens
    skip = {image_token_id} | set(wrapper_ids)
    expanded_text = [i for i, t in enumerate(ids) if t not in skip]
    plain_text = [i for i, t in enumerate(plain_ids) if t not in skip]
    if [ids[i] for i in expanded_text] != [plain_ids[i] for i in plain_text]:
        raise EncodingError(
            f"item {item.uid}: processor and tokenizer disagree on the text tokens; "
            "the family's adapter needs a custom span mapping"
        )
    to_expanded = dict(zip(plain_text, expanded_text))
    spans = {g: [] for g in GROUPS}
    for name, pos in seg_positions.items():
        spans[name] = sorted(to_expanded[p] for p in pos if p in to_expanded)
    vision = [i for i, t in enumerate(ids) if t == image_token_id]
    spans["vision"] = vision
    last = len(ids) - 1
    spans["last"] = [last]
    start = (max(vision) + 1) if vision else min(
        (p[0] for n, p in spans.items() if p and n not in ("last",)), default=0
    )
    wrappers = {i for i, t in enumerate(ids) if t in wrapper_ids}
    spans["text"] = [i for i in range(start, last) if i not in set(vision) and i not in wrappers]
    user = (shift, shift + len(seg.user_text))
    spans["template"] = sorted(to_expanded[p] for p, (a, b) in enumerate(plain["offset_mapping"])
                               if p in to_expanded and (b <= user[0] or a >= user[1]) and to_expanded[p] != last)
    if seg.has_image and not vision:
        raise EncodingError(f"item {item.uid}: the processor produced no image tokens")
    return dict(enc), spans


def collate(encodings: list[dict], pad_id: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Right-pad token-aligned tensors; concatenate image tensors along their first dim."""
    lengths = torch.tensor([e["input_ids"].shape[1] for e in encodings])
    T = int(lengths.max())
    out: dict[str, torch.Tensor] = {}
    keys = sorted({k for e in encodings for k in e})
    for key in keys:
        parts = [e[key] for e in encodings if key in e]
        token_aligned = all(p.dim() == 2 and p.shape[1] == e["input_ids"].shape[1] for p, e in zip(parts, encodings)) and len(parts) == len(encodings)
        if token_aligned and key in ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids"):
            fill = pad_id if key == "input_ids" else 0
            padded = torch.full((len(parts), T), fill, dtype=parts[0].dtype)
            for b, p in enumerate(parts):
                padded[b, : p.shape[1]] = p[0]
            out[key] = padded
        else:
            out[key] = torch.cat(parts, dim=0)
    return out, lengths


def encode(bundle, items: list[Item], layout: str = "paper") -> Batch:
    """Encode ``items`` for ``bundle`` (a :class:`mfutils.models.loading.ModelBundle`) as one batch."""
    ad = bundle.adapter
    return encode_with(bundle.processor, ad.image_token_id, items, bundle.image_loader, layout,
                       frozenset(ad.wrapper_token_ids(bundle.processor)))


def encode_with(processor, image_token_id: int, items: list[Item], image_loader, layout: str = "paper",
                wrappers: frozenset = frozenset()) -> Batch:
    """Encode ``items`` as one right-padded batch from a processor alone (training has no bundle yet)."""
    pairs = [encode_one(processor, image_token_id, it, image_loader, layout, wrappers) for it in items]
    inputs, lengths = collate([p[0] for p in pairs], processor.tokenizer.pad_token_id)
    return Batch(inputs, [p[1] for p in pairs], lengths, list(items))


def batches(items: list[Item], batch_size: int):
    """Consecutive chunks of ``items`` of at most ``batch_size``."""
    for i in range(0, len(items), batch_size):
        yield items[i : i + batch_size]
