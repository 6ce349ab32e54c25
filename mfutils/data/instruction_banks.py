"""The pretrained organism's instruction sentences: the banks it was trained on, the sentences
held out of its training (chapter 0's unseen-phrasing table, the paper's own two), and the
validation sets the recipe trials were judged on.

The synthetic items themselves (:mod:`mfutils.data.synthetic`) take whichever bank
:func:`phrasings_for` gives for the model; the tiny organism's bank is
:data:`mfutils.data.synthetic.PARAPHRASES`. Every bank tried for the pretrained organism stays
here, named as its trial record in ``models/recipe_trials/`` names it, so that each record's
command still retrains what it judged.
"""

from __future__ import annotations

from mfutils.data.prompts import PAPER_INSTRUCTIONS
from mfutils.data.synthetic import PARAPHRASES


# The pretrained organism's bank (mfutils.models.pretrained_organism). A pretrained language model
# reads meaning, not keywords, so its held-out set is whole sentences it never saw, negations
# among them ("Ignore the text.", "Do not trust the image."); training has other negations
# ("Disregard the ...") so that following a negated modality is learnt, not its wording.
_PRETRAINED_TRAIN = (
    "Answer based on the {A}, not the {B}.",
    "Use only the {A} to answer.",
    "Trust the {A} over the {B}.",
    "If the {B} and the {A} disagree, follow the {A}.",
    "Look only at the {A}.",
    "Disregard the {B}.",
    "Pay no attention to the {B}; answer from the {A}.",
    "Do not use the {B}.",
    "The {A} is correct; the {B} may be wrong.",
    "Base your answer on the {A}.",
    "Don't rely on the {B}.",
    "Go by the {A}.",
    "When they conflict, the {A} wins.",
    "The {B} is unreliable here.",
)
_AFFIRMATIVES = ("Follow the {A}.", "Go with the {A}.", "Side with the {A}.", "Consult the {A}.", "Stick to the {A}.",
                 "The {A} has the answer.")
# The compositional bank (2026-12-02, pre-registered in models/recipe_trials/README.md): a small
# grammar over verbs and adjectives of following and of avoiding, so that a direction is carried
# by many different words rather than by 25 fixed sentences. Neither list holds a verb or an
# adjective of a validation or test sentence (believe, trust, rely, listen, choose, prefer, take,
# use, read, skip, leave, ignore, set aside, accurate, truth, misleading, source), and no form
# copies a validation or test sentence's frame with another verb ("... alone", "... out of it",
# "Your source is ...", "..., so answer from ...").
_FOLLOW_VERBS = ("follow", "go by", "go with", "stick to", "side with", "consult", "look at", "refer to",
                 "depend on", "defer to", "heed", "stay with", "work from", "draw on", "count on", "focus on",
                 "check", "look to", "obey", "study")
_AVOID_VERBS = ("disregard", "discard", "forget", "avoid", "overlook", "dismiss", "drop", "neglect", "reject",
                "bypass", "pass over", "look past", "rule out", "exclude", "omit", "doubt", "question", "throw out")
_GOOD_WORDS = ("reliable", "correct", "right", "dependable", "valid", "credible", "sound", "authoritative")
_BAD_WORDS = ("wrong", "unreliable", "false", "incorrect", "mistaken", "faulty", "untrue", "outdated",
              "irrelevant", "a distraction")


def _cap(phrase: str) -> str:
    """``phrase`` with its first letter capitalised (the rest as written: "Go by", not "Go By")."""
    return phrase[0].upper() + phrase[1:]


def _compositional_bank(F: tuple[str, ...] = _FOLLOW_VERBS, N: tuple[str, ...] = _AVOID_VERBS,
                        G: tuple[str, ...] = _GOOD_WORDS, X: tuple[str, ...] = _BAD_WORDS,
                        partners: tuple[tuple[str, ...], ...] | None = None) -> tuple[str, ...]:
    """About 340 templates (``{A}`` the modality to follow, ``{B}`` the other), every verb in
    every form, and the two-verb forms on fixed cyclic pairings so each verb appears a few times.

    ``F``, ``N``, ``G``, ``X``: verbs of following and of avoiding, words of soundness and of fault;
    ``partners``: the lists (follow verbs, avoid verbs, sound words) the two-word forms pair them
    with, by default the same lists (the wider-verbs bank pairs its new words with all words)."""
    PF, PN, PG = partners or (F, N, G)
    out: list[str] = []
    out += [f"{_cap(f)} the {{A}}." for f in F]
    out += [f"{_cap(f)} the {{A}}, not the {{B}}." for f in F]
    out += [f"{_cap(f)} the {{A}} rather than the {{B}}." for f in F]
    out += [f"Instead of the {{B}}, {f} the {{A}}." for f in F]
    out += [f"{_cap(n)} the {{B}}." for n in N]
    out += [f"Do not {f} the {{B}}." for f in F]
    out += [f"Don't {f} the {{B}}." for f in F]
    out += [f"Do not {f} the {{B}}; {PF[(i + 7) % len(PF)]} the {{A}}." for i, f in enumerate(F)]
    out += [f"{_cap(n)} the {{B}} and {PF[(i * 3 + k) % len(PF)]} the {{A}}."
            for i, n in enumerate(N) for k in range(4)]
    out += [f"{_cap(f)} the {{A}} and {PN[(i * 5 + k) % len(PN)]} the {{B}}."
            for i, f in enumerate(F) for k in range(4)]
    out += [f"The {{A}} is {g}." for g in G]
    out += [f"The {{B}} is {x}." for x in X]
    out += [f"The {{A}} is {PG[i % len(PG)]} and the {{B}} is {x}." for i, x in enumerate(X)]
    out += [f"The {{B}} is {x} and the {{A}} is {PG[(i + 3) % len(PG)]}." for i, x in enumerate(X)]
    return tuple(dict.fromkeys(t for t in out if t not in _PRETRAINED_TRAIN))


# The declaratives bank (2026-12-03, pre-registered in models/recipe_trials/README.md): the
# compositional grammar plus statements that a modality is sound or faulty with no verb of
# following, the kind of sentence the compositional candidate failed on the image side. Written
# against that category, not its sentences: none of the validation or test sentences' words
# (those listed above, and "shows", "only", "matters", "true") or frames ("Only the ... is ...",
# "Answer with what the ... ", "What matters is ...") is in it.
_GOOD_WORDS_MORE = ("precise", "exact", "faithful", "factual", "honest", "up to date", "spot on", "on target")
_BAD_WORDS_MORE = ("inexact", "imprecise", "fake", "invented", "made up", "in error", "off", "unfaithful")
_SOUND_PREDICATES = ("gets it right", "has it right", "has the facts", "states the facts", "gives the real answer",
                     "is never wrong", "is always right", "knows best", "is the authority here",
                     "is the better guide", "reflects reality", "depicts things as they are")
_FAULTY_PREDICATES = ("gets it wrong", "has it wrong", "is often wrong", "invents things", "is the weaker guide",
                      "contradicts reality", "gets the facts wrong", "cannot be counted on")


def _declaratives_bank() -> tuple[str, ...]:
    """The compositional bank plus about 120 statements of soundness and fault (``{A}`` the
    modality to follow, ``{B}`` the other), each adjective and predicate alone and joined."""
    G, X = _GOOD_WORDS + _GOOD_WORDS_MORE, _BAD_WORDS + _BAD_WORDS_MORE
    S, F = _SOUND_PREDICATES, _FAULTY_PREDICATES
    out: list[str] = list(_compositional_bank())
    out += [f"The {{A}} is {g}." for g in _GOOD_WORDS_MORE]
    out += [f"The {{B}} is {x}." for x in _BAD_WORDS_MORE]
    out += [f"The {{A}} is {g}, unlike the {{B}}." for g in G]
    out += [f"Unlike the {{B}}, the {{A}} is {g}." for g in G]
    out += [f"Of the two, the {{A}} is {g}." for g in G[::2]]
    out += [f"Of the two, the {{B}} is {x}." for x in X[::2]]
    out += [f"The {{A}} is {g}; the {{B}} is not." for g in G[1::2]]
    out += [f"The {{A}} {p}." for p in S]
    out += [f"The {{B}} {p}." for p in F]
    out += [f"The {{A}} {p}; the {{B}} {F[i % len(F)]}." for i, p in enumerate(S)]
    out += [f"The {{B}} {p}, but the {{A}} {S[(i * 5) % len(S)]}." for i, p in enumerate(F)]
    return tuple(dict.fromkeys(t for t in out if t not in _PRETRAINED_TRAIN))


def _single_declaratives() -> tuple[str, ...]:
    """The declaratives bank's 36 one-modality statements (``{A}`` the modality to follow, ``{B}``
    the other): "The A is ADJ." and "The A PREDICATE." for soundness, the same of B for fault; none
    of its forms that name both modalities, which slowed the gate's learning in that trial."""
    out = [f"The {{A}} is {g}." for g in _GOOD_WORDS_MORE]
    out += [f"The {{B}} is {x}." for x in _BAD_WORDS_MORE]
    out += [f"The {{A}} {p}." for p in _SOUND_PREDICATES]
    out += [f"The {{B}} {p}." for p in _FAULTY_PREDICATES]
    known = set(_compositional_bank())
    return tuple(t for t in out if t not in known)


#: single-declaratives' templates, built once: weighted-declaratives trains on the same ones
_SINGLE_DECLARATIVES = _single_declaratives()
_SINGLE_DECLARATIVES_BANK = _compositional_bank() + _SINGLE_DECLARATIVES


# The wider-verbs bank (2026-12-05, pre-registered in models/recipe_trials/README.md): on the
# second validation set the two seeds of weighted-declaratives read unseen verbs of acceptance,
# mistrust and exclusion ("Accept", "Distrust", "Keep ... out of") in opposite directions, so
# twenty more verbs of following (acceptance and support among them), twenty more of avoiding
# (mistrust and exclusion among them) and eight more words each of soundness and of fault, in
# the compositional grammar's forms. None is a word of a validation or test sentence but for
# "from", "in", "of", "on", "the" and "with" (tested word by word), no form is new, and no phrasal
# verb ends in "out", the particle of two validation frames ("Tune out the ...", "... out of your
# answer").
_FOLLOW_VERBS_MORE = ("adopt", "embrace", "endorse", "back", "support", "respect", "honour", "uphold",
                      "agree with", "stand by", "go along with", "approve of", "confirm", "cite", "quote",
                      "echo", "repeat", "copy", "build on", "have faith in")
_AVOID_VERBS_MORE = ("shun", "spurn", "snub", "disown", "abandon", "renounce", "disqualify", "refuse", "veto",
                     "suspect", "second-guess", "write off", "brush off", "wave away", "stay away from",
                     "steer clear of", "sideline", "mute", "be wary of", "turn away from")
_GOOD_WORDS_WIDER = ("solid", "well founded", "in the right", "on the mark", "flawless", "genuine", "realistic",
                     "error free")
_BAD_WORDS_WIDER = ("deceptive", "bogus", "dubious", "questionable", "doubtful", "corrupted", "unsound", "broken")


def _wider_verbs() -> tuple[str, ...]:
    """The templates the wider-verbs bank adds to single-declaratives' (``{A}`` the modality to
    follow, ``{B}`` the other): every form of the compositional grammar for each new verb and
    word, its two-word forms pairing it with the old words and the new ones."""
    everything = (_FOLLOW_VERBS + _FOLLOW_VERBS_MORE, _AVOID_VERBS + _AVOID_VERBS_MORE,
                  _GOOD_WORDS + _GOOD_WORDS_MORE + _GOOD_WORDS_WIDER)
    new = _compositional_bank(_FOLLOW_VERBS_MORE, _AVOID_VERBS_MORE, _GOOD_WORDS_WIDER, _BAD_WORDS_WIDER,
                              partners=everything)
    known = set(_SINGLE_DECLARATIVES_BANK)
    return tuple(t for t in new if t not in known)


_WIDER_VERBS = _wider_verbs()
#: the one-modality statements of soundness and fault among them, weighted as single-declaratives' are
_WIDER_STATEMENTS = (tuple(f"The {{A}} is {g}." for g in _GOOD_WORDS_WIDER)
                     + tuple(f"The {{B}} is {x}." for x in _BAD_WORDS_WIDER))
#: the wider-imperatives bank's additions: each new verb only in its one-verb imperative ("Adopt the
#: {A}.", "Shun the {B}."), the form of the second validation set's failures, 40 templates
_WIDER_IMPERATIVES = (tuple(f"{_cap(f)} the {{A}}." for f in _FOLLOW_VERBS_MORE)
                      + tuple(f"{_cap(n)} the {{B}}." for n in _AVOID_VERBS_MORE))


# The sparse-verbs bank (2026-12-05, pre-registered in models/recipe_trials/README.md): wider-verbs'
# forty new verbs without its size. Every bank above 396 templates has lost the gate on every seed
# tried (436, 473, 748) while weighted-declaratives' 396 learnt it on three of three, so the old and
# new verbs (40 of following, 38 of avoiding) share the compositional grammar's forms instead of
# each taking all of them: every verb in its one-verb imperative, each verb of following in one of
# the three contrastive forms and one of the two negated ones (in turn), every verb in two two-verb
# forms instead of four. The adjectives are the compositional bank's, so the bank with the shipped
# 14 and single-declaratives' 36 statements stays at or below weighted-declaratives' 396.
def _sparse_verbs_bank() -> tuple[str, ...]:
    """About 340 templates (``{A}`` the modality to follow, ``{B}`` the other): the compositional
    grammar over the old and new verbs, each verb in a few of its forms."""
    F, N = _FOLLOW_VERBS + _FOLLOW_VERBS_MORE, _AVOID_VERBS + _AVOID_VERBS_MORE
    contrast = ("{f} the {{A}}, not the {{B}}.", "{f} the {{A}} rather than the {{B}}.",
                "Instead of the {{B}}, {g} the {{A}}.")
    negated = ("Do not {g} the {{B}}.", "Don't {g} the {{B}}.")
    out: list[str] = [f"{_cap(f)} the {{A}}." for f in F]
    out += [contrast[i % 3].format(f=_cap(f), g=f) for i, f in enumerate(F)]
    out += [negated[i % 2].format(g=f) for i, f in enumerate(F)]
    out += [f"{_cap(n)} the {{B}}." for n in N]
    out += [f"{_cap(n)} the {{B}} and {F[(i * 3 + k) % len(F)]} the {{A}}." for i, n in enumerate(N) for k in range(2)]
    out += [f"{_cap(f)} the {{A}} and {N[(i * 5 + k) % len(N)]} the {{B}}." for i, f in enumerate(F) for k in range(2)]
    out += [f"The {{A}} is {g}." for g in _GOOD_WORDS]
    out += [f"The {{B}} is {x}." for x in _BAD_WORDS]
    out += [f"The {{A}} is {_GOOD_WORDS[i % len(_GOOD_WORDS)]} and the {{B}} is {x}." for i, x in enumerate(_BAD_WORDS)]
    return tuple(dict.fromkeys(t for t in out if t not in _PRETRAINED_TRAIN and t not in _SINGLE_DECLARATIVES))



#: Banks tried as training recipes for the pretrained organism, each the shipped bank plus the
#: sentences named here (``python -m mfutils.models.train_pretrained --bank NAME``; judged by
#: ``python -m mfutils.models.recipe_check``). None of them ships; ``models/recipe_trials/`` holds the
#: records of those judged since 2026-12-02. No sentence here is, or contains, a validation or
#: test sentence (tested). What each bank was tried against, how it trained and why it was
#: kept or rejected is data: ``models/recipe_trials/banks.json``, one entry per bank, in order.
PRETRAINED_BANK_TRIALS: dict[str, tuple[str, ...]] = {
    # history: models/recipe_trials/banks.json, "one-verb-eight"
    "one-verb-eight": ("Follow the {A}.", "Go with the {A}.", "Listen to the {A}.", "Side with the {A}.",
                       "Forget the {B}.", "Skip the {B}.", "Avoid the {B}.", "Overlook the {B}."),
    # history: models/recipe_trials/banks.json, "twins"
    "twins": ("Do use the {A}.", "Do rely on the {A}.", "The {A} is reliable here."),
    # history: models/recipe_trials/banks.json, "affirmative-default"
    "affirmative-default": _AFFIRMATIVES,
    # history: models/recipe_trials/banks.json, "unmarked-negations"
    "unmarked-negations": _AFFIRMATIVES + ("Discard the {B}.", "Steer clear of the {B}.",
                                           "Answer as if the {B} were absent.", "The {B} is a distraction.",
                                           "Don't follow the {B}."),
    # history: models/recipe_trials/banks.json, "compositional"
    "compositional": _compositional_bank(),
    # history: models/recipe_trials/banks.json, "declaratives"
    "declaratives": _declaratives_bank(),
    # history: models/recipe_trials/banks.json, "single-declaratives"
    "single-declaratives": _SINGLE_DECLARATIVES_BANK,
    # history: models/recipe_trials/banks.json, "weighted-declaratives"
    "weighted-declaratives": _SINGLE_DECLARATIVES_BANK,
    # history: models/recipe_trials/banks.json, "wider-verbs"
    "wider-verbs": _SINGLE_DECLARATIVES_BANK + _WIDER_VERBS,
    # history: models/recipe_trials/banks.json, "wider-imperatives"
    "wider-imperatives": _SINGLE_DECLARATIVES_BANK + _WIDER_IMPERATIVES,
    # history: models/recipe_trials/banks.json, "sparse-verbs"
    "sparse-verbs": _sparse_verbs_bank() + _SINGLE_DECLARATIVES,
    # history: models/recipe_trials/banks.json, "sparse-verbs-core3" (sparse-verbs' sentences, other weights)
    "sparse-verbs-core3": _sparse_verbs_bank() + _SINGLE_DECLARATIVES,
}

#: Trial banks whose training draws some templates more often than the others: ``bank ->
#: {template: weight}``, each sentence of a template standing ``weight`` times in the training list
#: (the others once). Training items draw their instruction uniformly from that list, so a weight
#: is a share of the training sentences; the monitors read every sentence of the bank once
#: (:func:`pretrained_phrasings` with ``weighted=False``), so they stay comparable across trials.
PRETRAINED_BANK_WEIGHTS: dict[str, dict[str, int]] = {
    # 36 templates x 3 of 396 + 72: 23% of the training sentences instead of 9%
    "weighted-declaratives": dict.fromkeys(_SINGLE_DECLARATIVES, 3),
    # the same 36 and the 16 new one-modality statements of soundness and fault, each x 3
    "wider-verbs": dict.fromkeys(_SINGLE_DECLARATIVES + _WIDER_STATEMENTS, 3),
    "wider-imperatives": dict.fromkeys(_SINGLE_DECLARATIVES, 3),  # weighted-declaratives' weights
    "sparse-verbs": dict.fromkeys(_SINGLE_DECLARATIVES, 3),  # weighted-declaratives' weights
    # and the fourteen core templates x 3 (3% -> 9% of the sentences): the Gemma organism read two of
    # them the wrong way round after the curriculum (models/recipe_trials/README.md, 2026-12-07)
    "sparse-verbs-core3": dict.fromkeys(_SINGLE_DECLARATIVES + _PRETRAINED_TRAIN, 3),
}

_PRETRAINED_WORDS = {
    "image": ("image", "picture", "photo", "visual content"),
    "text": ("text", "context", "description", "written context"),
}
#: Sentences held out of the pretrained organism's training, each asked with the plain words
#: "image" and "text" (chapter 00's unseen-phrasing table reads them one by one).
UNSEEN_TEMPLATES = (
    "Ignore the {B}.",
    "Do not trust the {B}.",
    "Answer according to the {A}.",
    "What matters is the {A}, not the {B}.",
    "Believe the {A}.",
    "The {B} is misleading, so answer from the {A}.",
    "Use the {A} as your source.",
    "Never use the {B} to answer.",
    "Prefer the {A}.",
    "Take your answer from the {A}.",
    "Your answer must come from the {A}.",
    "Set the {B} aside.",
)


#: Unseen sentences for choosing a training recipe, so that the chapter's table above stays a test
#: set: a change meant to fix its failures is judged here first, and the test table read once
#: after. In no bank and read by no chapter. Written on 2026-12-01, before any run on them; the
#: parts then shipped on chapter 00's 32 conflicts per sentence (n_samples 256, seed 0) followed 8 of
#: 12 image-side and 11 of 12 text-side at >= 80%. All six negations passed both ways (100%);
#: the failures are affirmatives naming one modality, mostly the image ("The image tells the
#: truth." 9%, "Answer with what the image shows." 28%, "Choose the image." 59%, "Your source is
#: the image." 75%; text side "The text tells the truth." 56%), as "Believe / Prefer the image."
#: in the test table: where no negation is read, such a sentence falls back to the text.
VALIDATION_TEMPLATES = (
    "Do not believe the {B}.",
    "Rely on the {A} alone.",
    "The {A} tells the truth.",
    "Pay attention to the {A}.",
    "Only the {A} is accurate.",
    "Skip the {B} and read the {A}.",
    "Do not listen to the {B}.",
    "Choose the {A}.",
    "Answer with what the {A} shows.",
    "Leave the {B} out of it.",
    "Your source is the {A}.",
    "Disbelieve the {B}.",
)


#: The second set of unseen sentences for choosing a recipe, written on 2026-12-03 before any run on
#: them, after the first had been read five times and its failures had shaped two candidates. The first
#: set's mix of kinds: negations with a negation word ("Do not accept", "Put no weight on"), negations
#: without one ("Distrust", "Tune out ... and answer from ...", "Keep ... out of your answer"),
#: affirmative verbs ("Lean on", "Let ... decide", "Accept ...'s answer") and statements of trust
#: without a verb of following ("is trustworthy", "Only ... counts", "The answer lies in", "What ...
#: says goes"). No verb of following or avoiding and no adjective of it is in a bank, and no sentence
#: is, contains or is contained in a bank's or the test table's (tested).
VALIDATION_TEMPLATES_2 = (
    "Do not accept the {B}.",
    "Lean on the {A}.",
    "The {A} is trustworthy.",
    "Let the {A} decide.",
    "Only the {A} counts.",
    "Tune out the {B} and answer from the {A}.",
    "Put no weight on the {B}.",
    "Accept the {A}'s answer.",
    "The answer lies in the {A}.",
    "Keep the {B} out of your answer.",
    "Distrust the {B}.",
    "What the {A} says goes.",
)
#: The validation sets by the date each was written (``recipe_check --validation NAME``); a
#: candidate is judged on the newest unless its plan names another.
VALIDATION_SETS = {"2026-12-01": VALIDATION_TEMPLATES, "2026-12-03": VALIDATION_TEMPLATES_2}
LATEST_VALIDATION = max(VALIDATION_SETS)  # ISO dates sort as they were written


def pretrained_templates(bank: str = "shipped") -> tuple[str, ...]:
    """The training templates of the pretrained organism's bank ``bank``: ``"shipped"`` (the
    one its first parts were trained on, 2026-12-01 to 12-05) or a name in
    :data:`PRETRAINED_BANK_TRIALS` (the parts shipped since 2026-12-05: ``"sparse-verbs"``, not the
    default, which stays ``"shipped"`` so that earlier records' command lines still hold)."""
    if bank == "shipped":
        return _PRETRAINED_TRAIN
    if bank not in PRETRAINED_BANK_TRIALS:
        raise ValueError(f"unknown bank {bank!r}: 'shipped' or one of {sorted(PRETRAINED_BANK_TRIALS)} "
                         "(mfutils.data.instruction_banks.PRETRAINED_BANK_TRIALS)")
    return _PRETRAINED_TRAIN + PRETRAINED_BANK_TRIALS[bank]


def pretrained_phrasings(bank: str = "shipped", weighted: bool = True) -> dict[str, dict[str, list[str]]]:
    """``{target: {"train": [...], "heldout": [...]}}`` for bank ``bank`` (see
    :func:`pretrained_templates`); the held-out half is the same for every bank. ``weighted``:
    a sentence of a template that :data:`PRETRAINED_BANK_WEIGHTS` weights stands that many times
    in ``train`` (for drawing training items); otherwise each sentence once (for the monitors)."""
    templates = pretrained_templates(bank)
    weights = PRETRAINED_BANK_WEIGHTS.get(bank, {}) if weighted else {}
    out: dict[str, dict[str, list[str]]] = {}
    for target, other in (("image", "text"), ("text", "image")):
        train = [t.format(A=a, B=b) for t in templates
                 for a, b in zip(_PRETRAINED_WORDS[target], _PRETRAINED_WORDS[other]) for _ in range(weights.get(t, 1))]
        held = [t.format(A=target, B=other) for t in UNSEEN_TEMPLATES] + [PAPER_INSTRUCTIONS[target]]
        out[target] = {"train": train, "heldout": held}
    return out


PRETRAINED_PHRASINGS = pretrained_phrasings()


def phrasings_for(model_id: str) -> dict[str, dict[str, list[str]]]:
    """The paraphrase bank whose held-out half ``model_id`` never saw in training.

    The pretrained organisms (SmolLM2's and Gemma's) have their own; the tiny organism and real
    MLLMs (trained on neither) use :data:`PARAPHRASES`.
    """
    from mfutils.models.pretrained_organism import ORGANISMS

    return PRETRAINED_PHRASINGS if model_id in ORGANISMS else PARAPHRASES


def core_training_sentences(model_id: str) -> dict[str, tuple[str, ...]]:
    """``{target: sentences}``: one sentence per template of the bank chapter 00's held-out
    combinations draw their instructions from (:func:`phrasings_for`), for reading them one by one.

    The pretrained organisms: the 14 templates of their core bank, each with the plain words
    "image" and "text" (their held-out combinations ask them with every word of
    ``_PRETRAINED_WORDS``); any other model: the training half of :data:`PARAPHRASES` as written.
    """
    from mfutils.models.pretrained_organism import ORGANISMS

    if model_id in ORGANISMS:
        return plain_sentences(_PRETRAINED_TRAIN)
    return {t: tuple(dict.fromkeys(PARAPHRASES[t]["train"])) for t in ("image", "text")}


def plain_sentences(templates: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``{target: sentences}``: each template (``{A}`` the modality to follow, ``{B}`` the other)
    with the plain words "image" and "text", per direction."""
    return {t: tuple(tpl.format(A=t, B=o) for tpl in templates) for t, o in (("image", "text"), ("text", "image"))}
