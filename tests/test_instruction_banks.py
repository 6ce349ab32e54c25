"""The instruction banks' trial history is data beside the records, one entry per bank in code."""

from __future__ import annotations

import json

from mfutils.data import instruction_banks
from mfutils.runs.paths import project_root

TRIALS = project_root() / "models" / "recipe_trials"


def test_every_bank_has_its_history_and_every_history_its_bank():
    history = json.loads((TRIALS / "banks.json").read_text())["banks"]
    assert [h["bank"] for h in history] == list(instruction_banks.PRETRAINED_BANK_TRIALS)
    for h in history:
        assert h["history"].strip(), h["bank"]
        for record in h["records"]:
            assert (TRIALS / record).is_file(), f"{h['bank']} cites a missing record {record}"
