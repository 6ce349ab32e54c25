"""The failure pool of chapters 3 and 5 (rule of 2026-12-06, issue 40): failures built for the
purpose, typed, from sentences and items no chapter's verdict reads.

Failures are never made by editing the model. The pool holds

- **natural failures**: the conflicts of the chapter's own split under the paper's two
  sentences (:func:`mfutils.findings.evaluation.conflict_items`), all of them, followed or not;
- **validation failures**: conflicts asked with the recipe-validation sentences
  (:data:`mfutils.data.instruction_banks.VALIDATION_SETS`, read by no chapter's verdict and
  in no training bank; :func:`sentences_for`). A *screen* asks every sentence in both directions on
  :data:`SCREEN_CONFLICTS` conflicts of its own seed; every (sentence, direction) with a failure
  there is then asked on fresh conflicts, :data:`DRAW_CONFLICTS` at a time, until each
  direction holds :data:`mfutils.findings.rules.MIN_FAILURES` failures or :data:`DRAW_CAP`
  conflicts were drawn. Only the failures of screen and draws enter the pool (their successes
  were asked to find failures, not to be analysed).

Every conflict is asked under both instructions, so each failure is typed by
:func:`mfutils.findings.rules.failure_type`: a *misread instruction* when the model gives the
answer it gives under the opposite instruction, else *other*. All conflicts pass the per-model
control filter, so a wrong answer is a following failure, not a misperception.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfutils.data import instruction_banks, synthetic
from mfutils.data.prompts import PAPER_INSTRUCTIONS
from mfutils.data.schema import Item
from mfutils.findings import rules
from mfutils.findings.evaluation import conflict_items, control_filter, run_readouts

#: Conflicts of the screen (every validation sentence, both directions) and its seed offset.
SCREEN_CONFLICTS = 8
SCREEN_SEED_OFFSET = 3000
#: Conflicts drawn per round for the sentences the screen saw fail, the draws' seed offset
#: (each round adds ``DRAW_CONFLICTS`` to it) and the most conflicts drawn in all.
DRAW_CONFLICTS = 16
DRAW_SEED_OFFSET = 4000
DRAW_CAP = 128

OTHER = {"image": "text", "text": "image"}


def validation_templates() -> list[str]:
    """Every recipe-validation sentence template (``{A}``: the modality to follow, ``{B}``: the
    other), in the order the sets were written."""
    return [t for name in sorted(instruction_banks.VALIDATION_SETS) for t in instruction_banks.VALIDATION_SETS[name]]


def sentences_for(bundle, model_id: str) -> tuple[str, list[dict[str, str]]]:
    """The sentence pairs (``{"image": …, "text": …}``) the pool asks, and their name.

    The validation sentences, where the model's tokenizer can read every one; a word-level
    vocabulary that cannot (the tiny organism's) gets its own bank's held-out paraphrases
    instead, less the paper's sentence (they pair up by position): sentences it never trained
    on, the nearest it has to a validation set."""
    pairs = [{t: tpl.format(A=t, B=OTHER[t]) for t in OTHER} for tpl in validation_templates()]
    if all(_readable(bundle.tokenizer, s) for p in pairs for s in p.values()):
        return "validation sentences", pairs
    held = instruction_banks.phrasings_for(model_id)
    pairs = [{t: held[t]["heldout"][i] for t in OTHER} for i in range(len(held["image"]["heldout"]))]
    return "held-out paraphrases", [p for p in pairs if PAPER_INSTRUCTIONS["image"] != p["image"]]


def _readable(tokenizer, sentence: str) -> bool:
    unk = getattr(tokenizer, "unk_token_id", None)
    return unk is None or unk not in tokenizer(sentence)["input_ids"]


def _conflicts(n: int, seed: int, bundle, batch_size: int, control: bool) -> list[Item]:
    base = synthetic.make_split("eval", n, seed, {"conflict": 1.0})
    if control:
        base, _ = control_filter(bundle, base, batch_size)
    return base


def asked(conflicts: list[Item], sentences: list[tuple[int, dict[str, str]]]) -> list[Item]:
    """Each conflict under each ``(index, {target: sentence})`` in both directions; uid
    ``{conflict}/{target}/v{index}``, so the two directions of one question pair up."""
    out = []
    for it in conflicts:
        for k, pair in sentences:
            for target in ("image", "text"):
                d = dict(it.to_dict(), uid=f"{it.uid}/{target}/v{k}", target=target, instruction=pair[target])
                out.append(Item.from_dict(d))
    return out


def _answer(item: Item, decision: int) -> str:
    """What the model answered, as a word (a distinct token for 'neither', never equal to another)."""
    if decision == 1:
        return item.following_answer
    if decision == -1:
        return item.competitor_answer or ""
    return f"(neither: {item.uid})"


def typed(items: list[Item], table: pd.DataFrame, pair_key) -> pd.DataFrame:
    """One row per item of ``table`` (readouts of ``items``) with ``answer``, ``failed``
    (``decision != 1``) and, for failures, ``type`` (:func:`mfutils.findings.rules.failure_type`
    against the answer under the opposite instruction: the item with the same ``pair_key`` and
    the other target)."""
    by_uid = {it.uid: it for it in items}
    t = table.copy()
    t["answer"] = [_answer(by_uid[u], int(d)) for u, d in zip(t["uid"], t["decision"])]
    t["pair"] = [pair_key(by_uid[u]) for u in t["uid"]]
    opposite = {(p, tg): a for p, tg, a in zip(t["pair"], t["target"], t["answer"])}
    t["failed"] = t["decision"] != 1
    t["type"] = [rules.failure_type(a, opposite.get((p, OTHER[tg]), "(not asked)")) if f else ""
                 for p, tg, a, f in zip(t["pair"], t["target"], t["answer"], t["failed"])]
    return t


def failure_pool(spec, bundle, seed_offset: int = 0) -> tuple[list[Item], pd.DataFrame, dict]:
    """The chapter's conflicts under the paper's sentences plus the validation failures.

    Returns ``(items, table, sizes)``: the pool's items (paper-sentence conflicts first),
    one row per item (``uid``, ``target``, ``decision``, ``source`` — ``paper sentence`` or the
    validation sentence —, ``failed``, ``type``) and counts (``paper sentences``: conflicts,
    ``validation failures``, ``failures image`` / ``failures text``, screen and draw sizes).
    ``seed_offset`` moves every seed (chapter 5 builds its pool on its evaluation split)."""
    items, _ = conflict_items(spec, bundle, seed_offset)
    paper = typed(items, run_readouts(bundle, items, spec.batch_size),
                  pair_key=lambda it: it.uid.rsplit("/", 1)[0]).assign(source="paper sentence")
    if not spec.data.startswith("synthetic"):  # the validation sentences are asked of synthetic conflicts only
        return items, paper, {**_sizes(paper, 0, 0), "sentences": "none (a paper item file)"}
    name, pairs = sentences_for(bundle, spec.model_id)
    templates = list(enumerate(pairs))
    seed = spec.seed + seed_offset
    screen_items = asked(_conflicts(SCREEN_CONFLICTS, seed + SCREEN_SEED_OFFSET, bundle, spec.batch_size,
                                    spec.control_filter), templates)
    screen = _validation_rows(screen_items, bundle, spec.batch_size)
    failing = sorted({int(u.rsplit("/v", 1)[1]) for u in screen.loc[screen["failed"], "uid"]})
    failed_uids = set(screen.loc[screen["failed"], "uid"])
    tables_, pool_items = [screen[screen["failed"]]], [it for it in screen_items if it.uid in failed_uids]
    drawn = 0
    while failing and drawn < DRAW_CAP and min(_counts(pd.concat(tables_ + [paper])).values()) < rules.MIN_FAILURES:
        fresh = _conflicts(DRAW_CONFLICTS, seed + DRAW_SEED_OFFSET + drawn, bundle, spec.batch_size, spec.control_filter)
        # distinct uids per round: make_split numbers its items from 0 for every seed
        fresh = [Item.from_dict(dict(it.to_dict(), uid=f"{it.uid}@{drawn}")) for it in fresh]
        new_items = asked(fresh, [templates[k] for k in failing])
        rows = _validation_rows(new_items, bundle, spec.batch_size)
        keep = set(rows.loc[rows["failed"], "uid"])
        tables_.append(rows[rows["failed"]])
        pool_items += [it for it in new_items if it.uid in keep]
        drawn += DRAW_CONFLICTS
    table = pd.concat([paper] + tables_, ignore_index=True)
    return items + pool_items, table, {**_sizes(table, len(screen_items) // 2, drawn), "sentences": name}


def _validation_rows(items: list[Item], bundle, batch_size: int) -> pd.DataFrame:
    # uid {conflict}/{target}/v{k} (:func:`asked`): the question is the uid less its target
    t = typed(items, run_readouts(bundle, items, batch_size), pair_key=lambda it: it.uid.replace(f"/{it.target}/", "/"))
    t["source"] = [it.instruction for it in items]
    return t


def _counts(table: pd.DataFrame) -> dict[str, int]:
    return {t: int((table["failed"] & (table["target"] == t)).sum()) for t in ("image", "text")}


def _sizes(table: pd.DataFrame, screened: int, drawn: int) -> dict:
    c = _counts(table)
    return {"paper-sentence conflicts": int((table["source"] == "paper sentence").sum()),
            "validation failures": int((table["source"] != "paper sentence").sum()),
            "failures image": c["image"], "failures text": c["text"],
            "screened questions": screened, "conflicts drawn": drawn}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Failures per direction, sentence and type (the table each chapter shows)."""
    f = table[table["failed"]]
    if f.empty:
        return pd.DataFrame(columns=["direction", "sentence", "type", "failures"])
    src = np.where(f["source"] == "paper sentence", "(the paper's)", "“" + f["source"].astype(str) + "”")
    return (f.assign(direction=f["target"], sentence=src).groupby(["direction", "sentence", "type"]).size()
            .rename("failures").reset_index())
