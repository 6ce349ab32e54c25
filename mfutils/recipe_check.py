"""Judge a candidate training of the pretrained organism before it replaces the shipped parts.

    python -m mfutils.recipe_check [--parts DIR] [--record models/recipe_trials/DATE-BANK.json]

Chapter 00's unseen-sentence table is a test set: a recipe changed to fix its failures must be
judged elsewhere first, or the table only measures how well the recipe was fitted to it. This
reads a trained-parts folder (default: the shipped one) on the *validation* sentences
(:data:`mfutils.synthetic.VALIDATION_TEMPLATES`, in no bank and read by no chapter), with the
chapter's own conflicts (its defaults: 256 samples, so 32 conflicts per sentence, seed 0), and
applies :func:`accepts`, whose thresholds are chapter 00's behaviour targets (:mod:`mfutils.rules`):
the validation sentences in place of the test ones, and the training record's final monitor
(every group, the consistent ones included) in place of the chapter's held-out sets; the paper's
two sentences are left to the chapter. A candidate whose final monitor misses its target is
rejected without reading the validation sentences. Only a candidate it accepts is shipped; chapter 00's table
is then read once, whatever it shows. ``--record PATH`` writes the trial's record (bank, training
configuration and curve, final monitor, verdict, validation table) from the folder's
``training.json`` and this run, for ``models/recipe_trials/``; it never replaces a record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from .rules import MIN_PHRASINGS_MET, TARGET_HELDOUT, TARGET_PHRASING


#: the validation table's columns the check prints and a trial's record keeps
VALIDATION_COLUMNS = ["direction", "instruction", "n", "following_ratio", "ci_low", "ci_high"]


def monitor_met(final_eval: dict[str, float]) -> tuple[bool, list[str]]:
    """The rule's first half: every group of the training record's final monitor (``group ->
    accuracy``) at least :data:`~mfutils.rules.TARGET_HELDOUT`. Returns it and one line per group."""
    lines, ok = [], True
    for group, acc in final_eval.items():
        met = acc >= TARGET_HELDOUT
        ok &= met
        lines.append(f"monitor {group}: {acc:.1%} (≥ {TARGET_HELDOUT:.0%}: {'met' if met else 'NOT met'})")
    return ok, lines


def accepts(final_eval: dict[str, float], validation: pd.DataFrame) -> tuple[bool, list[str]]:
    """The rule, fixed before any candidate was read: :func:`monitor_met`, and per direction at
    least :data:`~mfutils.rules.MIN_PHRASINGS_MET` validation sentences followed at least
    :data:`~mfutils.rules.TARGET_PHRASING` of the time. Returns the verdict and one line per
    criterion."""
    ok, lines = monitor_met(final_eval)
    for direction in ("image", "text"):
        rows = validation[validation["direction"] == direction]
        n = int((rows["following_ratio"] >= TARGET_PHRASING).sum())
        met = n >= MIN_PHRASINGS_MET
        ok &= met
        lines.append(f"validation, {direction} side: {n} of {len(rows)} sentences ≥ {TARGET_PHRASING:.0%} "
                     f"(≥ {MIN_PHRASINGS_MET}: {'met' if met else 'NOT met'})")
    return ok, lines


def trial_record(training: dict, validation: pd.DataFrame | None, accepted: bool, lines: list[str], date: str) -> dict:
    """A recipe trial's record: ``training`` (the candidate's ``training.json``) with the check's
    verdict, criterion ``lines`` and ``validation`` table (one row per sentence: direction,
    instruction, n, following_ratio, ci_low, ci_high; None: not read, the monitor rejected it)."""
    from . import synthetic

    cfg = training["train_config"]
    bank = cfg.get("bank", "shipped")
    return {
        "trial": bank,
        "date": date,
        "bank_change": {"added_to": "mfutils.synthetic._PRETRAINED_TRAIN (appended; mfutils.synthetic.PRETRAINED_BANK_TRIALS)",
                        "sentences": list(synthetic.PRETRAINED_BANK_TRIALS.get(bank, ()))},
        "train_config": cfg,
        "seconds": training["seconds"],
        "machine": training["machine"],
        "parts_sha256": training["parts_sha256"],
        "curve_evals": [r for r in training["curve"] if "eval" in r],
        "final_eval": training["final_eval"],
        "recipe_check": {"accepted": accepted, "criteria": lines,
                         "validation_read": validation is not None,
                         "validation": None if validation is None else validation[VALIDATION_COLUMNS].to_dict("records")},
        "reproduce": f"python -m mfutils.train_pretrained {training_flags(cfg)} --out DIR, then "
                     "python -m mfutils.recipe_check --parts DIR",
    }


def training_flags(cfg: dict) -> str:
    """The ``train_pretrained`` options that retrain ``cfg`` (a ``train_config``): ``--bank`` always,
    and every field that differs from :class:`~mfutils.train_pretrained.PretrainedTrainConfig`'s
    default (a seed replicate's ``--seed 1`` among them)."""
    import dataclasses

    from .train_pretrained import PretrainedTrainConfig

    flags = [f"--bank {cfg.get('bank', 'shipped')}"]
    for f in dataclasses.fields(PretrainedTrainConfig):
        if f.name != "bank" and f.name in cfg and cfg[f.name] != f.default:
            flags.append(f"--{f.name.replace('_', '-')} {cfg[f.name]}")
    return " ".join(flags)


def validation_table(num_threads: int = 2) -> pd.DataFrame:
    """:func:`mfutils.behaviour.unseen_phrasings` on the validation sentences, for the parts in
    :func:`mfutils.pretrained_organism.pretrained_dir`, at chapter 00's defaults."""
    from . import synthetic
    from .behaviour import BehaviourSpec, unseen_phrasings
    from .loading import PRETRAINED_ID, load_model
    from .session import configure

    spec = BehaviourSpec(model_id=PRETRAINED_ID, num_threads=num_threads)
    configure(spec)
    bundle = load_model(spec.model_id, device=spec.device, dtype=spec.dtype)
    return unseen_phrasings(bundle, spec, synthetic.VALIDATION_TEMPLATES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mfutils.recipe_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="", help="a trained-parts folder (train_pretrained --out); default: the shipped one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--record", default="", help="write the trial's record here (JSON; refused if it exists)")
    args = ap.parse_args(argv)
    if args.record and Path(args.record).exists():
        # checked before the minutes of validation: a record is evidence, never overwritten
        print(f"recipe_check: --record {args.record} exists; give a new path", file=sys.stderr)
        return 2
    if args.parts:
        from .pretrained_organism import PARTS_FILE

        missing = [n for n in (PARTS_FILE, "training.json") if not (Path(args.parts) / n).is_file()]
        if missing:
            # a typo here would otherwise surface as the shipped parts' restore hint, far from its cause
            print(f"recipe_check: --parts {args.parts} holds no {' and no '.join(missing)}: give the folder a "
                  "training wrote (`python -m mfutils.train_pretrained --out DIR`)", file=sys.stderr)
            return 2
        # read by pretrained_organism.pretrained_dir; the merged cache is keyed by the parts' digest
        os.environ["MFUTILS_PRETRAINED_DIR"] = str(Path(args.parts).resolve())
    from .pretrained_organism import record

    final = record()["final_eval"]["accuracy"]
    table = None
    ok, lines = monitor_met(final)
    if ok:
        table = validation_table(args.threads)
        with pd.option_context("display.width", 120, "display.max_colwidth", 60):
            print(table[VALIDATION_COLUMNS].to_string(index=False))
        ok, lines = accepts(final, table)
    else:
        # each reading spends some of the validation set's independence: none for a candidate the monitor refuses
        lines.append("validation sentences not read: the final monitor already rejects this candidate")
    print("\n".join(lines))
    print("ACCEPTED" if ok else "REJECTED")
    print(json.dumps({"accepted": ok, "validation": None if table is None else
                      table[["direction", "instruction", "following_ratio"]].to_dict("records")}))
    if args.record:
        import datetime as dt

        rec = trial_record(record(), table, ok, lines, dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"))
        out = Path(args.record)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n")
        tmp.rename(out)
        print(f"record written to {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
