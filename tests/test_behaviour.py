"""Chapter 00's sentence tables: which sentences are asked, on which conflicts, and how a
shortfall is put into words."""

import pandas as pd

from mfutils.data import instruction_banks as ib
from mfutils.data.synthetic import PARAPHRASES
from mfutils.findings import behaviour


def _row(direction, sentence, follow, other, note=""):
    return {"direction": direction, "instruction": sentence, "n": 16, "following_ratio": follow, "ci_low": follow,
            "ci_high": follow, "competitor_share": other, "note": note}


def test_the_core_training_sentences_are_what_the_held_out_combinations_ask():
    for model_id in ("pretrained-organism", "gemma-organism"):
        core = ib.core_training_sentences(model_id)
        for target in ("image", "text"):
            assert len(core[target]) == 14
            # asked with the plain words; every one is a sentence the held-out combinations draw from
            assert set(core[target]) <= set(ib.phrasings_for(model_id)[target]["train"])
            assert all("image" in s or "text" in s for s in core[target])
    assert "Use only the image to answer." in ib.core_training_sentences("gemma-organism")["image"]
    tiny = ib.core_training_sentences("organism")
    assert tiny["text"] == tuple(dict.fromkeys(PARAPHRASES["text"]["train"]))


def test_every_sentence_is_asked_on_the_same_conflicts():
    spec = behaviour.BehaviourSpec(model_id="gemma-organism", n_samples=64)
    items = behaviour.sentence_items(spec, ib.core_training_sentences(spec.model_id))
    assert len(items) == 28
    bases = {tuple(it.uid.rsplit("/", 1)[0] for it in its) for its in items.values()}
    assert len(bases) == 1 and len(next(iter(bases))) == 8  # n_samples // 8 conflicts, the same ones
    for sentence, its in items.items():
        assert {it.instruction for it in its} == {sentence}
        assert len({it.target for it in its}) == 1
    # the unseen table reads the same conflicts, its sentences in the order it always had
    unseen = behaviour.unseen_phrasing_items(spec)
    assert list(unseen)[:2] == ["Ignore the text.", "Do not trust the text."]
    assert list(unseen)[12] == "Ignore the image."
    assert {tuple(it.uid.rsplit("/", 1)[0] for it in its) for its in unseen.values()} == bases


def test_the_shortfall_sentence_names_the_low_sentences_lowest_first_and_the_inverted_ones():
    t = pd.DataFrame([_row("image", "Follow the image.", 1.0, 0.0),
                      _row("image", "Use only the image to answer.", 0.0, 1.0),
                      _row("text", "Use only the text to answer.", 0.5, 0.25),
                      _row("text", "Believe the text.", float("nan"), float("nan"), "cannot be read")])
    s = behaviour.shortfall_sentence(t, "training sentences")
    assert s.startswith("2 of the 3 training sentences are followed on fewer than 80% of their conflicts: ")
    assert s.index("“Use only the image to answer.” 0% (other modality 100%)") < s.index("“Use only the text")
    assert s.endswith("The model reads 1 of them the wrong way round, answering from the other modality on at least "
                      "half of their conflicts.")
    one = behaviour.shortfall_sentence(t.iloc[:2], "training sentences")
    assert one.startswith("1 of the 2 training sentences is followed on fewer than 80% of its conflicts: ")
    assert one.endswith("The model reads it the wrong way round, answering from the other modality on at least half of "
                        "its conflicts.")
    assert behaviour.shortfall_sentence(t.iloc[[0, 2]], "training sentences").endswith(
        "None is read the wrong way round (answered from the other modality on at least half of its conflicts).")
    assert behaviour.shortfall_sentence(t.iloc[:1], "training sentences") == (
        "Every one of the 1 training sentences is followed on at least 80% of its conflicts.")
    assert behaviour.shortfall_sentence(t.iloc[3:], "training sentences") == "No training sentences could be read by this model."


def test_training_phrasings_on_the_tiny_model(tiny_bundle):
    spec = behaviour.BehaviourSpec(model_id="organism", n_samples=16, n_boot=10)
    t = behaviour.training_phrasings(tiny_bundle, spec)
    assert len(t) == 2 * len(ib.core_training_sentences("organism")["image"])
    assert list(t.columns) == ["direction", "instruction", "n", "following_ratio", "ci_low", "ci_high",
                               "competitor_share", "note"]
    ok = t[t["note"] == ""]
    assert ((ok["following_ratio"] + ok["competitor_share"]) <= 1 + 1e-9).all()
