"""The loader for the paper's items: reads the authors' format, rejects malformed rows by index.

Tests run on a fixture in the authors' format (``tests/data/modality-following``); the ones
marked ``shared_data`` also read the paper's files in ../shared/data where that is present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfutils.engine.encoding import encode
from mfutils.runs.paths import shared_dir
from mfutils.data.prompts import CONSTRAINT, PAPER_INSTRUCTIONS
from mfutils.data.real_items import DataFileError, load_items

DATA = shared_dir() / "data" / "modality-following"
QWEN_TEXT = DATA / "v3_following_text_open_ended_qwen_vl_2_5_7b_remaining.json"
LLAVA_VISION = DATA / "v3_following_vision_open_ended_llava-v1.5-7b_remaining.json"
needs_data = pytest.mark.skipif(not QWEN_TEXT.exists(), reason="../shared/data not present")
FIXTURE = Path(__file__).parent / "data" / "modality-following"
FIXTURE_TEXT = FIXTURE / "v3_following_text_open_ended_fixture.json"
FIXTURE_VISION = FIXTURE / "v3_following_vision_open_ended_fixture.jsonl"


def test_reads_the_authors_format():
    text, vision = load_items(FIXTURE_TEXT), load_items(FIXTURE_VISION)
    assert len(text) == 3 and len(vision) == 2
    assert all(it.target == "text" and it.instruction == PAPER_INSTRUCTIONS["text"] for it in text)
    assert all(it.target == "image" and it.instruction == PAPER_INSTRUCTIONS["image"] for it in vision)
    it = text[0]
    assert (it.question, it.answer_image, it.answer_text) == ("What color is the kite?", "red", "green")
    assert it.candidates_text == ("green", "lime") and it.meta["image_id"] == "000000000101"
    assert it.meta["paper_instruction"] and it.meta["task"] == "color_recognition"
    swapped = load_items(FIXTURE_TEXT, swap_target=True)
    assert swapped[0].target == "image" and swapped[0].instruction == PAPER_INSTRUCTIONS["image"]
    assert swapped[0].answer_image == "red"  # the answers stay; only the instruction changes


@needs_data
@pytest.mark.shared_data
def test_reads_the_papers_own_files():
    text = load_items(QWEN_TEXT)
    vision = load_items(LLAVA_VISION)
    assert len(text) == 842 and len(vision) == 896
    assert all(it.target == "text" and it.instruction == PAPER_INSTRUCTIONS["text"] for it in text)
    assert all(it.target == "image" and it.instruction == PAPER_INSTRUCTIONS["image"] for it in vision)
    it = text[0]
    assert it.answer_text == "walking" and "walk" in it.candidates_text and it.question == "What are the giraffes doing?"
    swapped = load_items(QWEN_TEXT, swap_target=True)
    assert swapped[0].target == "image" and swapped[0].instruction == PAPER_INSTRUCTIONS["image"]


def test_malformed_rows_are_reported_with_index_and_reason(tmp_path):
    good = {"image_id": "000000000001", "task": "color", "context": "The bus is red.", "answer_img": "blue",
            "answer_text": "red", "answer_img_candidate_list": [], "answer_text_candidate_list": [],
            "question2": f"{PAPER_INSTRUCTIONS['image']}\nWhat color is the bus?\n{CONSTRAINT} "}
    rows = [good, dict(good, answer_img=""), dict(good, question2="no newlines"), dict(good, answer_img="Red"), 7]
    path = tmp_path / "v3_following_vision_x.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataFileError) as err:
        load_items(path)
    msg = str(err.value)
    assert "4 malformed row(s)" in msg
    assert "row 1: missing or empty field(s) ['answer_img']" in msg
    assert "row 2: question2" in msg and "row 3" in msg and "different image and text answers" in msg
    assert "row 4: expected an object" in msg


def test_missing_file_and_bad_json_say_what_to_do(tmp_path):
    with pytest.raises(DataFileError, match="EchoDreamer/Modality-Following"):
        load_items(tmp_path / "v3_following_text_missing.json")
    with pytest.raises(DataFileError, match="not found"):  # a name without the target in it is missing, too
        load_items(tmp_path / "typo.json")
    bad = tmp_path / "v3_following_text_bad.jsonl"
    bad.write_text('{"a": 1}\n{oops')
    with pytest.raises(DataFileError, match="not valid JSON"):
        load_items(bad)


def test_real_items_encode_with_a_local_image_folder(tmp_path, tiny_bundle):
    from PIL import Image

    items = load_items(FIXTURE_TEXT)
    coco = tmp_path / "coco" / "val2014"
    coco.mkdir(parents=True)
    for it in items:
        Image.new("RGB", (40, 30), (200, 10, 10)).save(coco / f"COCO_val2014_{it.meta['image_id']}.jpg")
    items = load_items(FIXTURE_TEXT, coco_dir=tmp_path / "coco")
    # the tiny organism's word-level vocabulary cannot read captions: a clear error, never <unk>
    from mfutils.engine.encoding import UnrepresentableTextError

    with pytest.raises(UnrepresentableTextError, match="beach"):
        encode(tiny_bundle, items)
    reader = _byte_level_bundle(tiny_bundle)
    batch = encode(reader, items)
    assert all(len(sp["vision"]) == 16 and sp["instruction"] and sp["text_context"] for sp in batch.spans)


def _byte_level_bundle(tiny_bundle):
    """The tiny model's processor with a byte-level BPE tokenizer (trained on nothing, so
    every word is bytes): enough to encode any text and map its spans."""
    from dataclasses import replace

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlavaProcessor, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_tokens([chr(b) for b in range(33, 127)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    tok.add_special_tokens({"additional_special_tokens": ["<image>"], "pad_token": "<pad>"})
    tok.chat_template = tiny_bundle.processor.tokenizer.chat_template
    old = tiny_bundle.processor
    proc = LlavaProcessor(image_processor=old.image_processor, tokenizer=tok, patch_size=old.patch_size,
                          vision_feature_select_strategy="default", chat_template=tok.chat_template,
                          image_token="<image>", num_additional_image_tokens=1)
    return replace(tiny_bundle, processor=proc, adapter=_ImageToken(tiny_bundle.adapter, tok.convert_tokens_to_ids("<image>")))


class _ImageToken:
    def __init__(self, adapter, image_token_id):
        self._adapter, self.image_token_id = adapter, image_token_id

    def __getattr__(self, name):
        return getattr(self._adapter, name)
