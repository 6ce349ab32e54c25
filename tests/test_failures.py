"""The failure pool of chapters 3 and 5 (rule of 2026-12-06) and the typing of its failures."""

from __future__ import annotations

import pandas as pd

from mfutils.data.schema import Item
from mfutils.findings import failures, rules


def _conflict(uid: str, target: str) -> Item:
    return Item.from_dict({"uid": uid, "kind": "conflict", "question": "What colour is the ball?",
                           "image_ref": "synthetic:red:circle:1", "context": "The ball is blue.", "target": target,
                           "instruction": f"Follow the {target}.", "answer_image": "red", "answer_text": "blue"})


def test_failures_are_typed_against_the_answer_under_the_opposite_instruction():
    items = [_conflict(f"c{i}/{t}", t) for i in range(3) for t in ("image", "text")]
    # c0: follows both; c1: answers "blue" (the text) under both instructions: its image failure
    # is a misread instruction; c2: answers the other modality each time (fails both ways): "other"
    decisions = {"c0/image": 1, "c0/text": 1, "c1/image": -1, "c1/text": 1, "c2/image": -1, "c2/text": -1}
    table = pd.DataFrame([{"uid": it.uid, "target": it.target, "decision": decisions[it.uid]} for it in items])
    t = failures.typed(items, table, pair_key=lambda it: it.uid.split("/")[0]).set_index("uid")
    assert list(t["failed"]) == [False, False, True, False, True, True]
    assert t.loc["c1/image", "type"] == rules.FAILURE_TYPES[0] == "misread instruction"
    assert t.loc["c2/image", "type"] == t.loc["c2/text", "type"] == "other"
    assert t.loc["c0/image", "type"] == ""
    # an answer that is neither candidate never counts as the opposite instruction's answer
    table.loc[table["uid"] == "c2/image", "decision"] = 0
    table.loc[table["uid"] == "c2/text", "decision"] = 0
    t = failures.typed(items, table, pair_key=lambda it: it.uid.split("/")[0]).set_index("uid")
    assert t.loc["c2/image", "type"] == "other"


def test_the_pool_is_built_from_sentences_no_verdict_reads(tiny_bundle):
    from mfutils.findings.inertia import InertiaSpec

    spec = InertiaSpec(model_id="organism", n_samples=4, batch_size=16, num_threads=1, control_filter=False)
    items, table, sizes = failures.failure_pool(spec, tiny_bundle)
    # the tiny organism cannot read the validation sentences: its own held-out paraphrases instead
    assert sizes["sentences"] == "held-out paraphrases"
    paper = table[table["source"] == "paper sentence"]
    assert len(paper) == sizes["paper-sentence conflicts"] and len(items) == len(table)
    others = table[table["source"] != "paper sentence"]
    assert others["failed"].all()  # only failures of the screen and the draws enter the pool
    assert set(others["type"]) <= set(rules.FAILURE_TYPES)
    assert sizes["failures image"] + sizes["failures text"] == int(table["failed"].sum())
    assert len({it.uid for it in items}) == len(items)
    # deterministic
    again = failures.failure_pool(spec, tiny_bundle)[1]
    pd.testing.assert_frame_equal(table, again)


def test_ablation_effect_counts_only_answers_from_the_other_modality_as_failures():
    import pandas as pd

    from mfutils.findings.inertia import ablation_effect

    base = pd.DataFrame({"uid": list("abcde"), "target": ["image"] * 5, "decision": [1, 1, -1, -1, 0]})
    ablated = base.assign(decision=[1, -1, 1, -1, 1])
    (row,) = ablation_effect(base, ablated).to_dict(orient="records")
    assert row["failures"] == 2 and row["answered neither"] == 1
    assert row["repaired"] == 0.5 and row["broken"] == 0.5 and row["MF ablated"] == 0.6
