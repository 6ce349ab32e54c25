"""What a chapter prints about its run: :func:`mfutils.book.session.description_table`."""

from __future__ import annotations

from mfutils.book.session import description_table

DESC = {"chapter": "00_behaviour", "model": "pretrained-organism", "family": "pretrained-organism", "n_layers": 30,
        "n_heads": 9, "n_kv_heads": 3, "head_dim": 64, "total_heads": 270, "data": "synthetic", "n_samples": 256,
        "seed": 0, "results": "results/00_behaviour/pretrained-organism/ccf5e72b4a"}


def test_the_run_description_reads_as_five_short_rows():
    t = description_table(DESC)
    assert list(t.columns) == ["setting", "value"]
    assert dict(zip(t["setting"], t["value"])) == {
        "chapter": "00_behaviour",
        "model": "pretrained-organism",
        "attention": "30 layers × 9 heads = 270 heads; 3 key/value heads; head size 64",
        "data": "synthetic, 256 samples, seed 0",
        "results": "results/00_behaviour/pretrained-organism/ccf5e72b4a",
    }
    assert DESC["n_layers"] == 30  # the caller's dict is left as it was


def test_a_family_unlike_its_model_id_and_unknown_keys_are_kept():
    t = description_table({**DESC, "model": "llava-hf/llava-1.5-7b-hf", "family": "llava", "n_kv_heads": 9,
                           "image_tokens": 576})
    rows = dict(zip(t["setting"], t["value"]))
    assert rows["model"] == "llava-hf/llava-1.5-7b-hf (llava family)"
    assert rows["attention"] == "30 layers × 9 heads = 270 heads; head size 64"  # as many key/value heads: not said
    assert rows["image_tokens"] == 576 and t["setting"].iloc[-1] == "results"
