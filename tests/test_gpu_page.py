"""The GPU page's parameter files and commands, exercised on tiny random-weight models.

For each supported family, a tiny random-weight checkpoint of the real architecture and
processor class is saved to disk and chapter 00 runs end to end through the same runner and
papermill path a GPU user runs, with that family's parameter file (device and dtype swapped
for the CPU, the per-model filter off because random weights answer nothing right).
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from mfutils.book import estimates
from mfutils.book.chapters import CHAPTERS, chapter_spec
from mfutils.runs.paths import project_root

from .adapters.tiny_families import FAMILIES, save

ROOT = project_root()
PARAMS = sorted((ROOT / "notebooks" / "params").glob("*.yaml"))
FAMILY_OF = {c.model_id: c.family for c in estimates.CARDS}


def test_every_family_has_a_parameter_file_valid_for_every_chapter():
    families = set()
    for path in PARAMS:
        p = yaml.safe_load(path.read_text())
        assert p["model_id"] in FAMILY_OF, f"{path.name}: {p['model_id']} has no estimate card"
        families.add(FAMILY_OF[p["model_id"]])
        for chapter in CHAPTERS:
            spec = chapter_spec(chapter, **p)
            assert spec.device == "cuda" and spec.model_id == p["model_id"]
    assert families == set(FAMILIES), "a supported family has no parameter file"
    # the GPU page's estimates read these from one file: every file must set the same
    shared = {tuple((k, yaml.safe_load(path.read_text()).get(k)) for k in ("n_samples", "n_random", "exhaustive"))
              for path in PARAMS}
    assert len(shared) == 1 and None not in dict(next(iter(shared))).values()


def test_estimates_count_the_passes_the_chapters_run():
    # the organism's chapter 04, per conflict and again per matched control: fast scorer (2 IG
    # steps of forward + backward = 6, a clean pass, and its shortlist of 2 x 4 heads ablated,
    # each from its own layer: 9/16 of a pass on average),
    # plain attribution (3), direct (1), and exhaustive ablation: a clean pass plus each of the
    # 64 heads rerun from its own layer, 8 heads x (8 + 7 + ... + 1) / 8 layers = 36 passes
    # (what head_scores.score_all counts); plus the per-model filter's 2 control passes; without
    # exhaustive ablation, the selection splits score each conflict and control once more (fast)
    fast = 6 + 1 + 8 * 9 / 16
    assert estimates.passes_per_sample("04_sparse_heads", 8, 64, {"exhaustive": True}) == 2 * (fast + 3 + 1 + 37) + 2
    assert estimates.passes_per_sample("04_sparse_heads", 8, 64, {"exhaustive": False}) == 2 * (fast + 3 + 1) + 2 * fast + 2
    # on a GPU its three gradient passes (2 IG steps, plain attribution) recompute their layers
    assert estimates.passes_per_sample("04_sparse_heads", 8, 64, {"exhaustive": False}, checkpointed=True) \
        == 2 * (fast + 3 + 1 + 3) + 2 * fast + 2
    e = estimates.estimate(estimates.CARDS[0], "00_behaviour", 128, 8)
    assert 13 < e["GPU memory (GiB, est.)"] < 20  # 7B in bf16 is about 13 GiB of weights
    # chapter 01's knockouts: the incremental engine's share of a pass, below one full pass each
    full = estimates.passes_per_sample("01_shallow_routing", 32, 1024, {})
    incremental = estimates.passes_per_sample("01_shallow_routing", 32, 1024, {}, seq_len=700)
    assert incremental < 0.15 * full


def test_every_chapter_of_every_family_fits_one_80_gb_gpu():
    from mfutils.book.chapters import CHAPTERS, notebook_defaults

    for exhaustive in (False, True):
        est = estimates.estimates_table({ch: {**notebook_defaults(ch), "exhaustive": exhaustive} for ch in CHAPTERS})
        assert (est["GPU memory (GiB, est.)"] <= estimates.GPU_GIB).all()
        assert (est["batch"] >= 1).all()
    # the cap is what makes them fit: at LLaVA-NeXT's 2,144 image tokens chapter 01's saliency,
    # which keeps every layer's activations, holds few rows; chapter 04's attribution
    # checkpoints its layers and runs the parameter files' batch of 8
    next_ = est[est["model"].str.contains("mistral")].set_index("chapter")["batch"]
    assert int(next_["01_shallow_routing"]) < 8 and int(next_["04_sparse_heads"]) == 8


def test_items_within_the_book_target_scale_linearly():
    book = pd.Series({"a": 120.0, "b": 600.0})
    assert estimates.items_within(book).to_dict() == {"a": 500, "b": 100}


def test_batch_cap_follows_the_visible_memory(tiny_bundle, monkeypatch):
    from mfutils.engine import memory

    assert memory.cap_batch(tiny_bundle, 16, gradient=True) == (16, None)  # CPU: never capped
    # CPU: heads per pass up to CPU_ROWS rows (every head of a layer for a small batch, one for a large one)
    assert memory.heads_per_pass(tiny_bundle, 4, 64) == tiny_bundle.adapter.n_heads
    assert memory.heads_per_pass(tiny_bundle, memory.CPU_ROWS, 64) == 1
    shape = memory.Shape.of(tiny_bundle.adapter.language_model.config)
    per_row = memory.row_bytes(shape, memory.DEFAULT_SEQ_LEN, 4, gradient=True)
    monkeypatch.setattr(memory, "free_bytes", lambda device: int(5 * per_row / memory.HEADROOM))
    size, why = memory.cap_batch(tiny_bundle, 16, gradient=True)
    assert size == 5 and "16 -> 5" in why
    assert memory.cap_batch(tiny_bundle, 4, gradient=True) == (4, None)
    assert memory.heads_per_pass(tiny_bundle, 4, 64) == tiny_bundle.adapter.n_heads
    monkeypatch.setattr(memory, "free_bytes", lambda device: 1)
    assert memory.cap_batch(tiny_bundle, 16, gradient=False)[0] == 1 and memory.heads_per_pass(tiny_bundle, 4, 64) == 1


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_chapter_runs_end_to_end_on_a_tiny_model_of_each_family(family, tmp_path):
    model_dir = tmp_path / "model"
    save(family, model_dir)
    params_file = next(p for p in PARAMS if FAMILY_OF[yaml.safe_load(p.read_text())["model_id"]] == family)
    p = yaml.safe_load(params_file.read_text())
    p.update(model_id=str(model_dir), device="cpu", dtype="float32", control_filter=False, n_samples=8,
             output_dir=str(tmp_path / "results"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    cmd = [sys.executable, "-m", "mfutils.book.runner", "execute", "00", "--params-file", str(tmp_path / "params.yaml"),
           "--out", str(tmp_path / "executed"), "--timeout", "300"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "executed" / "00_behaviour.ipynb").exists()
    finished = list((tmp_path / "results" / "00_behaviour").glob("*/*/_COMPLETE.json"))
    assert len(finished) == 1


def test_dry_run_fails_fast_with_what_to_do(tmp_path):
    cmd = [sys.executable, "-m", "mfutils.book.runner", "check", "-p", "model_id", "llava-hf/llava-1.5-7b-hf"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "hf download llava-hf/llava-1.5-7b-hf" in proc.stderr
