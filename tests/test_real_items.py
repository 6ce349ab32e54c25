"""The loader for the paper's items: reads ../shared/data, rejects malformed rows by index."""

from __future__ import annotations

import json

import pytest

from mfutils.encoding import encode
from mfutils.paths import shared_dir
from mfutils.prompts import CONSTRAINT, PAPER_INSTRUCTIONS
from mfutils.real_items import DataFileError, load_items

DATA = shared_dir() / "data" / "modality-following"
QWEN_TEXT = DATA / "v3_following_text_open_ended_qwen_vl_2_5_7b_remaining.json"
LLAVA_VISION = DATA / "v3_following_vision_open_ended_llava-v1.5-7b_remaining.json"
needs_data = pytest.mark.skipif(not QWEN_TEXT.exists(), reason="../shared/data not present")


@needs_data
@pytest.mark.shared_data
def test_reads_the_papers_files():
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
    bad = tmp_path / "v3_following_text_bad.jsonl"
    bad.write_text('{"a": 1}\n{oops')
    with pytest.raises(DataFileError, match="not valid JSON"):
        load_items(bad)


@needs_data
@pytest.mark.shared_data
def test_real_items_encode_with_a_local_image_folder(tmp_path, tiny_bundle):
    from PIL import Image

    items = load_items(QWEN_TEXT)[:3]
    coco = tmp_path / "coco" / "val2014"
    coco.mkdir(parents=True)
    for it in items:
        Image.new("RGB", (40, 30), (200, 10, 10)).save(coco / f"COCO_val2014_{it.meta['image_id']}.jpg")
    items = load_items(QWEN_TEXT, coco_dir=tmp_path / "coco")[:3]
    batch = encode(tiny_bundle, items)
    assert all(len(sp["vision"]) == 16 and sp["instruction"] and sp["text_context"] for sp in batch.spans)
