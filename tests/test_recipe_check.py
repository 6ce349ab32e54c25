"""The rule a candidate training of the pretrained organism must pass before it ships
(``mfutils.models.recipe_check``), and the folder override it reads candidates through."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mfutils.models import pretrained_organism as po
from mfutils.models.recipe_check import accepts
from mfutils.findings.rules import MIN_PHRASINGS_MET, TARGET_PHRASING

# taken at import: the session fixture ``pretrained_parts`` replaces the module's function later
_PRETRAINED_DIR = po.pretrained_dir


def _validation(image_met: int, text_met: int) -> pd.DataFrame:
    """Twelve sentences per direction, the first ``*_met`` exactly at the bar, the rest just under."""
    rows = [{"direction": d, "following_ratio": TARGET_PHRASING if i < met else TARGET_PHRASING - 0.01}
            for d, met in (("image", image_met), ("text", text_met)) for i in range(12)]
    return pd.DataFrame(rows)


def test_recipe_check_accepts_only_what_meets_every_target():
    monitor = {"conflict/image": 1.0, "conflict/text": 0.96, "image_only": 0.95}
    assert accepts(monitor, _validation(MIN_PHRASINGS_MET, 12))[0]
    assert not accepts(monitor, _validation(MIN_PHRASINGS_MET - 1, 12))[0]
    assert not accepts(monitor, _validation(12, MIN_PHRASINGS_MET - 1))[0]
    ok, lines = accepts({**monitor, "text_only": 0.949}, _validation(12, 12))
    assert not ok and any("text_only" in l and "NOT met" in l for l in lines)


def test_a_candidate_folder_is_read_in_place_of_the_shipped_parts(monkeypatch, tmp_path):
    monkeypatch.setenv("MFUTILS_PRETRAINED_DIR", str(tmp_path))
    assert _PRETRAINED_DIR() == tmp_path
    monkeypatch.delenv("MFUTILS_PRETRAINED_DIR")
    assert _PRETRAINED_DIR() == po.project_root() / "models" / "pretrained_organism"


def test_a_parts_folder_without_a_training_in_it_is_refused_by_name(tmp_path, capsys, monkeypatch):
    from mfutils.models import recipe_check

    monkeypatch.delenv("MFUTILS_PRETRAINED_DIR", raising=False)
    assert recipe_check.main(["--parts", str(tmp_path / "typo")]) == 2
    err = capsys.readouterr().err
    assert "typo" in err and po.PARTS_FILE in err and "train_pretrained --out" in err
    import os

    assert "MFUTILS_PRETRAINED_DIR" not in os.environ  # nothing was switched over to the missing folder


def test_the_trial_record_is_written_from_the_training_and_the_check(tmp_path, capsys, monkeypatch):
    import json

    from mfutils.models import recipe_check
    from mfutils.data import instruction_banks

    training = {"train_config": {"seed": 0, "bank": "twins"}, "seconds": {"total": 1.0}, "machine": {"python": "3.11"},
                "parts_sha256": "ab", "curve": [{"step": 0, "loss": 1.0}, {"step": 50, "eval": {"conflict/image": 0.5}}],
                "final_eval": {"items": 8, "accuracy": {"conflict/image": 0.9}}}
    table = _validation(11, 9).assign(instruction="x", n=32, ci_low=0.0, ci_high=1.0)
    ok, lines = accepts(training["final_eval"]["accuracy"], table)
    rec = recipe_check.trial_record(training, table, ok, lines, "2026-12-02")
    # judged on the newest validation set unless another is named, and the record says which
    assert rec["recipe_check"]["validation_set"] == instruction_banks.LATEST_VALIDATION == max(instruction_banks.VALIDATION_SETS)
    assert rec["reproduce"].endswith(f"--validation {instruction_banks.LATEST_VALIDATION}")
    assert rec["trial"] == "twins" and rec["bank_change"]["sentences"] == list(instruction_banks.PRETRAINED_BANK_TRIALS["twins"])
    assert rec["curve_evals"] == [training["curve"][1]] and rec["recipe_check"]["accepted"] is False
    assert len(rec["recipe_check"]["validation"]) == 24 and "--bank twins" in rec["reproduce"]
    json.dumps(rec)  # serialisable as it stands
    # a schedule tried on an earlier bank is recorded under its own name
    renamed = recipe_check.trial_record(training, table, ok, lines, "2026-12-02", trial="annealed-twins")
    assert renamed["trial"] == "annealed-twins" and renamed["bank_change"] == rec["bank_change"]
    # a seed replicate, or any other changed option, is retrained by the line the record gives
    assert recipe_check.training_flags({"seed": 1, "steps": 450, "bank": "shipped"}) == "--bank shipped --seed 1"
    # an existing record is refused before anything is loaded or run
    parts = tmp_path / "cand"
    parts.mkdir()
    for name in (po.PARTS_FILE, "training.json"):
        (parts / name).write_text("")
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    monkeypatch.delenv("MFUTILS_PRETRAINED_DIR", raising=False)
    assert recipe_check.main(["--parts", str(parts), "--record", str(existing)]) == 2
    assert "exists" in capsys.readouterr().err and existing.read_text() == "{}"


def test_a_candidate_the_monitor_rejects_is_judged_without_reading_the_validation_sentences(tmp_path, capsys, monkeypatch):
    import json

    from mfutils.models import recipe_check

    parts = tmp_path / "cand"
    parts.mkdir()
    (parts / po.PARTS_FILE).write_text("")
    training = {"train_config": {"seed": 0, "bank": "twins"}, "seconds": {"total": 1.0}, "machine": {},
                "parts_sha256": "ab", "curve": [], "final_eval": {"items": 8, "accuracy": {"conflict/image": 0.94,
                                                                                           "conflict/text": 1.0}}}
    (parts / "training.json").write_text(json.dumps(training))

    def never(*_):
        raise AssertionError("the validation sentences were read")

    monkeypatch.setattr(recipe_check, "validation_table", never)
    # main sets the override itself: set then delete it here, so that teardown removes main's value too
    monkeypatch.setenv("MFUTILS_PRETRAINED_DIR", "unused")
    monkeypatch.delenv("MFUTILS_PRETRAINED_DIR")
    monkeypatch.setattr(po, "pretrained_dir", _PRETRAINED_DIR)  # the env override, not the session's parts
    out = tmp_path / "trials" / "r.json"
    assert recipe_check.main(["--parts", str(parts), "--record", str(out)]) == 1
    text = capsys.readouterr().out
    assert "conflict/image: 94.0%" in text and "not read" in text and "REJECTED" in text
    assert "no further seed" not in text  # at 94% a seed 1 at 100% would lift the mean to 97%
    rec = json.loads(out.read_text())
    assert rec["recipe_check"]["validation_read"] is False and rec["recipe_check"]["validation"] is None
    assert rec["trial"] == "twins" and not rec["recipe_check"]["accepted"]
    # at 85% no seed 1 can lift the mean to 95%, and the check says seed 1 need not be trained
    training["final_eval"]["accuracy"]["conflict/image"] = 0.85
    (parts / "training.json").write_text(json.dumps(training))
    assert recipe_check.main(["--parts", str(parts)]) == 1
    text = capsys.readouterr().out
    assert "no further seed can change this: the mean of conflict/image" in text and "REJECTED" in text


def test_the_checks_leave_the_parts_override_as_they_found_it():
    import os

    assert "MFUTILS_PRETRAINED_DIR" not in os.environ


def _candidate(folder, seed: int, monitor: dict[str, float], **config):
    import json

    folder.mkdir()
    (folder / po.PARTS_FILE).write_text("")
    training = {"train_config": {"seed": seed, "steps": 450, **config}, "seconds": {"total": 1.0}, "machine": {},
                "parts_sha256": f"seed{seed}", "curve": [], "final_eval": {"items": 8, "accuracy": monitor}}
    (folder / "training.json").write_text(json.dumps(training))
    return str(folder)


def test_a_recipe_is_judged_on_the_mean_of_two_seeds(tmp_path, capsys, monkeypatch):
    import json

    from mfutils.models import recipe_check
    from mfutils.data import instruction_banks
    from mfutils.findings.rules import RECIPE_SEEDS

    assert RECIPE_SEEDS == (0, 1)
    monkeypatch.setattr(po, "pretrained_dir", _PRETRAINED_DIR)  # the env override, not the session's parts
    monkeypatch.delenv("MFUTILS_PRETRAINED_DIR", raising=False)
    # seed 1 alone misses the monitor (0.93); the mean of the two meets it (0.965)
    a = _candidate(tmp_path / "a", 0, {"conflict/image": 1.0, "image_only": 1.0})
    b = _candidate(tmp_path / "b", 1, {"conflict/image": 0.93, "image_only": 0.96})
    read = []

    def table(_threads, validation_set):
        # seed 0 follows 11 sentences per side at the bar, seed 1 ten; pooled: ten at the bar or above
        assert validation_set == "2026-12-01"  # the set the command named, not the newest
        read.append(os.environ["MFUTILS_PRETRAINED_DIR"])
        met = 11 if len(read) == 1 else 10
        return _validation(met, met).assign(instruction=[f"s{i}" for i in range(24)], n=32, ci_low=0.0, ci_high=1.0)

    monkeypatch.setattr(recipe_check, "validation_table", table)
    out = tmp_path / "r.json"
    assert recipe_check.main(["--parts", a, "--replicate", b, "--validation", "2026-12-01", "--record", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ACCEPTED" in text and "mean of seeds 0, 1" in text
    assert read == [str(Path(a).resolve()), str(Path(b).resolve())]  # each seed's own parts
    rec = json.loads(out.read_text())
    assert rec["recipe_check"]["accepted"] and rec["replicates"][0]["seed"] == 1
    assert len(rec["replicates"][0]["validation"]) == 24
    assert rec["reproduce"].endswith("recipe_check --parts DIR0 --replicate DIR1 --validation 2026-12-01")
    assert "--seed 1 --out DIR1" in rec["reproduce"]
    assert rec["recipe_check"]["validation_set"] == "2026-12-01"
    assert rec["recipe_check"]["validation_sentences"] == list(instruction_banks.VALIDATION_TEMPLATES)
    assert "MFUTILS_PRETRAINED_DIR" not in os.environ  # put back as it was
    # the same seed-0 run alone is not accepted, however well it does
    read.clear()
    assert recipe_check.main(["--parts", a, "--validation", "2026-12-01"]) == 1
    assert "one seed only" in capsys.readouterr().out
    assert not read  # nor is the validation set read on it: seed 1 may still reject the recipe
    # a set that does not exist is refused before anything is read
    read.clear()
    assert recipe_check.main(["--parts", a, "--replicate", b, "--validation", "2026-13-01"]) == 2
    assert "no such set" in capsys.readouterr().err and not read


def test_replicates_that_are_not_one_recipe_are_refused_before_anything_is_read(tmp_path, capsys, monkeypatch):
    from mfutils.models import recipe_check

    monkeypatch.setattr(po, "pretrained_dir", _PRETRAINED_DIR)
    monkeypatch.delenv("MFUTILS_PRETRAINED_DIR", raising=False)
    monkeypatch.setattr(recipe_check, "validation_table", lambda *_: (_ for _ in ()).throw(AssertionError("read")))
    good = {"conflict/image": 1.0}
    a = _candidate(tmp_path / "a", 0, good)
    other_bank = _candidate(tmp_path / "b", 1, good, bank="twins")
    same_seed = _candidate(tmp_path / "c", 0, good)
    assert recipe_check.main(["--parts", a, "--replicate", other_bank]) == 2
    assert "differ in more than the seed: bank" in capsys.readouterr().err
    assert recipe_check.main(["--parts", a, "--replicate", same_seed]) == 2
    assert "seeds [0, 0]" in capsys.readouterr().err
    seed1 = _candidate(tmp_path / "d", 1, good)
    assert recipe_check.main(["--parts", seed1, "--replicate", a]) == 2  # seed 0's parts are the ones that ship
    assert "in that order" in capsys.readouterr().err
    assert recipe_check.main(["--parts", a, "--replicate", str(tmp_path / "typo")]) == 2
    assert "--replicate" in capsys.readouterr().err


def test_a_monitor_no_further_seed_can_lift_is_named():
    from mfutils.models.recipe_check import unreachable_groups

    seed0 = {"conflict/image": 0.855, "conflict/text": 0.97, "image_only": 0.90}
    # 0.855 and 1.0 average 92.75%; 0.90 and 1.0 exactly reach 95%
    assert unreachable_groups([seed0]) == ["conflict/image"]
    assert unreachable_groups([seed0], seeds=1) == ["conflict/image", "image_only"]
    assert unreachable_groups([seed0, {"conflict/image": 1.0, "conflict/text": 0.9, "image_only": 1.0}]) == [
        "conflict/image", "conflict/text"]


def test_pooling_takes_means_and_refuses_what_does_not_match():
    import pytest

    from mfutils.models.recipe_check import pooled_monitor, pooled_validation

    assert pooled_monitor([{"a": 1.0, "b": 0.9}, {"a": 0.9, "b": 0.9}]) == pytest.approx({"a": 0.95, "b": 0.9})
    with pytest.raises(ValueError, match="different groups"):
        pooled_monitor([{"a": 1.0}, {"b": 1.0}])
    t0 = pd.DataFrame({"direction": ["image"], "instruction": ["x"], "n": [32], "following_ratio": [1.0]})
    pooled = pooled_validation([t0, t0.assign(following_ratio=0.5)])
    assert pooled["following_ratio"].tolist() == [0.75] and pooled["n"].tolist() == [64]
    assert pooled["ratio_seed_1"].tolist() == [0.5]
    with pytest.raises(ValueError, match="same sentences"):
        pooled_validation([t0, t0.assign(instruction="y")])
