"""Loading fails at once, with a message that says what to do."""

from __future__ import annotations

import json

import pytest

from mfutils.models.adapters import UnsupportedModelError
from mfutils.models.loading import ORGANISM_ID, CorruptCheckpointError, ModelNotAvailableError, lm_shape, load_model


def test_hub_id_not_in_local_cache_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="not available offline.*download"):
        load_model("llava-hf/llava-1.5-7b-hf")


def test_missing_folder_and_bad_dtype_and_device():
    with pytest.raises(ModelNotAvailableError, match="no config.json"):
        load_model("./no/such/model")
    with pytest.raises(ValueError, match="dtype"):
        load_model("organism", dtype="float8")


def test_unsupported_family_is_named(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_head=1, n_embd=8).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="gpt2.*supported families"):
        load_model(str(tmp_path))


@pytest.fixture
def saved_tiny(tmp_path, tiny_bundle):
    """The tiny organism saved as a checkpoint folder."""
    folder = tmp_path / "m"
    tiny_bundle.model.save_pretrained(folder)
    tiny_bundle.processor.save_pretrained(folder)
    return folder


def test_corrupt_checkpoint_is_reported_not_loaded(saved_tiny):
    folder = saved_tiny
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError, match="corrupt|could not be loaded"):
        load_model(str(folder))
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError, match="config.json"):
        load_model(str(folder))


def test_saved_tiny_model_round_trips(saved_tiny):
    b = load_model(str(saved_tiny))
    assert b.adapter.family == "organism"
    assert json.loads((saved_tiny / "config.json").read_text())["mfutils"]["kind"] == "mfutils-organism"


def test_weights_missing_is_told_before_loading(saved_tiny):
    from mfutils.models.loading import check_model

    (saved_tiny / "model.safetensors").unlink()
    with pytest.raises(ModelNotAvailableError, match="model.safetensors"):
        check_model(str(saved_tiny))


def test_the_dry_run_opens_the_weights_header(saved_tiny):
    """A corrupt checkpoint fails in check_model (the dry run), before any kernel starts."""
    from mfutils.models.loading import check_model

    check_model(str(saved_tiny))  # intact: passes
    weights = saved_tiny / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[:-100])  # truncated: the header describes more bytes than there are
    with pytest.raises(CorruptCheckpointError, match="truncated.*Re-download"):
        check_model(str(saved_tiny))
    weights.write_bytes(b"\xff" * 8 + intact[8:])  # overwritten header length
    with pytest.raises(CorruptCheckpointError, match="header length"):
        check_model(str(saved_tiny))
    weights.write_bytes(intact[:8] + b"x" + intact[9:])  # a byte of the JSON header
    with pytest.raises(CorruptCheckpointError, match="corrupt"):
        check_model(str(saved_tiny))
    weights.unlink()
    (saved_tiny / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "model-00001.safetensors"}}))
    with pytest.raises(CorruptCheckpointError, match="missing shard"):
        check_model(str(saved_tiny))


def test_the_dry_run_reports_a_corrupt_checkpoint(saved_tiny):
    from mfutils.book.dryrun import DryRunError, dry_run

    weights = saved_tiny / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(DryRunError, match="model: weights .* are corrupt"):
        dry_run(["00_behaviour"], {"model_id": str(saved_tiny)})


def test_the_organisms_shape_is_read_without_loading_it(organism):
    assert lm_shape(ORGANISM_ID) == (organism.adapter.n_layers, organism.adapter.n_heads)
    with pytest.raises(ValueError, match="organisms only"):
        lm_shape("llava-hf/llava-1.5-7b-hf")
