"""Seeded synthetic conflict data for the model organism.

Each image is a small canvas with one coloured shape. The text context names an object (a
noun) and states its colour and shape. Some nouns have a *canonical* colour (a banana is
usually yellow) that training mostly confirms, so the model holds a prior that competes with
both modalities -- the paper's "semantic inertia" needs something to be inert about.

Held out from training, for evaluation: a fixed set of (noun, colour, shape) combinations and
a fixed set of instruction paraphrases. :func:`make_split` is the only entry point the rest
of the project needs.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache

import numpy as np
from PIL import Image

from mfutils.data.prompts import PAPER_INSTRUCTIONS
from mfutils.data.schema import Item

IMAGE_SIZE = 32

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (40, 70, 230),
    "yellow": (235, 220, 40),
    "purple": (140, 40, 180),
    "orange": (245, 140, 20),
    "white": (240, 240, 240),
    "pink": (245, 150, 200),
}
SHAPES = ("circle", "square", "triangle", "cross")

#: Nouns with a canonical colour (the prior) and nouns without one.
PRIOR_NOUNS = {
    "tomato": "red",
    "leaf": "green",
    "banana": "yellow",
    "plum": "purple",
    "carrot": "orange",
    "snowball": "white",
}
NEUTRAL_NOUNS = ("ball", "block", "toy", "sign", "badge", "kite")
NOUNS = tuple(PRIOR_NOUNS) + NEUTRAL_NOUNS

QUESTIONS = {
    "colour": "What color is the {noun}?",
    "shape": "What shape is the {noun}?",
}
CONTEXT_TEMPLATES = (
    "The {noun} is a {colour} {shape}.",
    "In this scene the {noun} looks {colour} and has the form of a {shape}.",
    "You can see a {colour} {noun} shaped like a {shape}.",
)

# Instruction paraphrases: templates x modality words. {A} is the modality to follow,
# {B} the other. The paper's own sentence joins each target's held-out pool (below).
_TEMPLATES = (
    "Answer based on the {A}, not the {B}.",
    "Rely on the {A} and ignore the {B}.",
    "Trust the {A} over the {B}.",
    "If the {B} and the {A} disagree, follow the {A}.",
    "Use only the {A} to answer.",
    # templates naming only the modality to follow, so that the gating can start from "which
    # modality word is there" before it learns which of two named ones is followed; without
    # them one 2,000-step run never learnt the gating, with them it emerged by ~1,750 (measured)
    "Look only at the {A}.",
    "The {A} is what counts here.",
)
_WORDS = {
    "image": ("image", "picture", "photo", "image content"),
    "text": ("text", "context", "description", "text context"),
}
# (template index, word index) pairs never seen in training, the same for both targets.
_HELDOUT_PARAPHRASE_KEYS = {(0, 2), (1, 3), (2, 1), (3, 0), (4, 2)}


def _paraphrases() -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for target, other in (("image", "text"), ("text", "image")):
        # the paper's sentence is held out: its MLLMs follow it zero-shot, never having been
        # trained on it, and so does the organism
        train, held = [], [PAPER_INSTRUCTIONS[target]]
        for t, template in enumerate(_TEMPLATES):
            for w, word in enumerate(_WORDS[target]):
                sentence = template.format(A=word, B=_WORDS[other][w])
                (held if (t, w) in _HELDOUT_PARAPHRASE_KEYS else train).append(sentence)
        out[target] = {"train": train, "heldout": held}
    return out


PARAPHRASES = _paraphrases()

def _stable_hash(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def is_heldout_combo(noun: str, colour: str, shape: str) -> bool:
    """True for the ~1/6 of (noun, image colour, shape) combinations training never sees."""
    return _stable_hash(noun, colour, shape) % 6 == 0


# ---------------------------------------------------------------------------------------
# images


@lru_cache(maxsize=4096)
def _shape_mask(shape: str, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        m = dx**2 + dy**2 <= r**2
    elif shape == "square":
        # as wide as the circle: its corners then reach into the corner 8-px patches, which
        # the circle never touches -- at 0.8 r the two differed in a few pixels and a 2-layer
        # tower needed thousands of steps to tell them apart (measured)
        m = (np.abs(dx) <= r) & (np.abs(dy) <= r)
    elif shape == "triangle":
        m = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.55)
    elif shape == "cross":
        w = max(1, r // 3)
        m = ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return m


def render_image(colour: str, shape: str, seed: int) -> Image.Image:
    """Draw one ``colour`` ``shape`` at a seeded position/size on a noisy dark canvas.

    Returns a ``IMAGE_SIZE x IMAGE_SIZE`` RGB image; the same arguments give the same pixels.
    """
    rng = np.random.default_rng(seed)
    canvas = rng.integers(10, 60, size=(IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.int16)
    # centred and large: a 2-layer vision tower on 8-px patches then learns shapes within the
    # training budget; with free placement it stayed at chance on shape (measured)
    r = int(rng.integers(10, 13))
    cx = cy = IMAGE_SIZE // 2
    rgb = np.array(COLOURS[colour], dtype=np.int16) + rng.integers(-15, 16, size=3)
    canvas[_shape_mask(shape, cx, cy, r)] = rgb
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")


def parse_ref(ref: str) -> dict:
    """``synthetic:<colour>:<shape>:<seed>`` -> ``{"colour": ..., "shape": ..., "seed": int}``."""
    _, colour, shape, seed = ref.split(":")
    return {"colour": colour, "shape": shape, "seed": int(seed)}


def image_from_ref(ref: str) -> Image.Image:
    """Render a ``synthetic:<colour>:<shape>:<seed>`` reference."""
    r = parse_ref(ref)
    return render_image(r["colour"], r["shape"], r["seed"])


# ---------------------------------------------------------------------------------------
# samples

SPLITS = ("train", "eval", "eval_heldout_paraphrase")
#: default mixture of kinds (the monitor set and evaluation splits; training sets its own, TrainConfig.mix)
DEFAULT_MIX = {"conflict": 0.5, "consistent": 0.2, "image_only": 0.15, "text_only": 0.15}
#: in training, how often a prior noun's colour (in the image, and in the text) is canonical
PRIOR_STRENGTH = 0.7


def _pick_colour(rng: random.Random, noun: str, avoid: str | None = None) -> str:
    canonical = PRIOR_NOUNS.get(noun)
    if canonical and canonical != avoid and rng.random() < PRIOR_STRENGTH:
        return canonical
    return rng.choice([c for c in COLOURS if c != avoid])


def make_sample(rng: random.Random, kind: str, split: str, index: int, phrasings=None) -> Item:
    """One synthetic item of ``kind`` for ``split`` (see :data:`SPLITS`); instructions from
    ``phrasings`` (default :data:`PARAPHRASES`)."""
    heldout = split != "train"
    for _ in range(1000):
        noun = rng.choice(NOUNS)
        attribute = rng.choice(("colour", "shape"))
        img_colour = _pick_colour(rng, noun) if split == "train" else rng.choice(list(COLOURS))
        img_shape = rng.choice(SHAPES)
        if is_heldout_combo(noun, img_colour, img_shape) == heldout:
            break
    else:  # pragma: no cover - the combination space makes this unreachable
        raise RuntimeError("could not draw a combination for split " + split)
    txt_colour, txt_shape = img_colour, img_shape
    if kind == "conflict":
        if attribute == "colour":
            txt_colour = (
                _pick_colour(rng, noun, avoid=img_colour)
                if split == "train"
                else rng.choice([c for c in COLOURS if c != img_colour])
            )
        else:
            txt_shape = rng.choice([s for s in SHAPES if s != img_shape])
    target = rng.choice(("image", "text")) if kind in ("conflict", "consistent") else None
    pool = "heldout" if split == "eval_heldout_paraphrase" else "train"
    instruction = rng.choice((phrasings or PARAPHRASES)[target][pool]) if target else None
    image_seed = rng.randrange(2**31)
    answer_image = img_colour if attribute == "colour" else img_shape
    answer_text = txt_colour if attribute == "colour" else txt_shape
    context = rng.choice(CONTEXT_TEMPLATES).format(noun=noun, colour=txt_colour, shape=txt_shape)
    return Item(
        uid=f"{split}-{kind}-{index}",
        kind=kind,  # type: ignore[arg-type]
        question=QUESTIONS[attribute].format(noun=noun),
        image_ref=None if kind == "text_only" else f"synthetic:{img_colour}:{img_shape}:{image_seed}",
        context=None if kind == "image_only" else context,
        target=target,  # type: ignore[arg-type]
        instruction=instruction,
        answer_image=None if kind == "text_only" else answer_image,
        answer_text=None if kind == "image_only" else answer_text,
        meta={
            "noun": noun,
            "attribute": attribute,
            "prior": PRIOR_NOUNS.get(noun) if attribute == "colour" else None,
            "split": split,
        },
    )


def make_split(split: str, n: int, seed: int, kinds: dict[str, float] | None = None, phrasings=None) -> list[Item]:
    """``n`` seeded items of ``split``; ``kinds`` maps kind -> share (default :data:`DEFAULT_MIX`);
    ``phrasings``: the paraphrase bank (default :data:`PARAPHRASES`, see :func:`phrasings_for`).

    Shares are realised exactly (rounded), in a seeded shuffled order, so that small
    evaluation sets are balanced.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    kinds = kinds or DEFAULT_MIX
    rng = random.Random(_stable_hash("split", split, seed))
    counts = {k: int(round(share * n)) for k, share in kinds.items()}
    counts[next(iter(counts))] += n - sum(counts.values())
    plan = [k for k, c in counts.items() for _ in range(c)]
    rng.shuffle(plan)
    return [make_sample(rng, kind, split, i, phrasings) for i, kind in enumerate(plan)]


def vocabulary() -> list[str]:
    """Every word the generator (and the paper's prompt pieces) can emit, sorted."""
    import itertools

    from mfutils.data.prompts import CONSTRAINT, CONTEXT_LABEL, NEUTRAL_SENTENCE
    from mfutils.models.tokenizer import split_words

    texts = [p for t in PARAPHRASES.values() for pool in t.values() for p in pool]
    texts += [CONSTRAINT, CONTEXT_LABEL, NEUTRAL_SENTENCE]
    for template in list(QUESTIONS.values()) + list(CONTEXT_TEMPLATES):
        for noun, colour, shape in itertools.product(NOUNS, COLOURS, SHAPES):
            texts.append(template.format(noun=noun, colour=colour, shape=shape))
    return sorted({w for text in texts for w in split_words(text)})


def paper_conflicts(n: int, seed: int, split: str = "eval") -> list[Item]:
    """``n`` held-out conflicts, each asked under both of the paper's own instructions.

    Returns ``2 n`` items (image-following then text-following versions of the same
    conflict), the set the analysis chapters use: the same conflicts in both directions,
    with the paper's exact instruction sentences.
    """
    base = make_split(split, n, seed, {"conflict": 1.0})
    out = []
    for target in ("image", "text"):
        for it in base:
            d = it.to_dict()
            d.update(uid=f"{it.uid}/{target}", target=target, instruction=PAPER_INSTRUCTIONS[target])
            out.append(Item.from_dict(d))
    return out
