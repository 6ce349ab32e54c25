"""Judge a candidate training of the pretrained organism before it replaces the shipped parts.

    python -m mfutils.models.recipe_check [--parts DIR] [--replicate DIR] [--validation DATE]
                                   [--record models/recipe_trials/DATE-NAME.json [--trial NAME]]

Chapter 00's unseen-sentence table is a test set: a recipe changed to fix its failures must be
judged elsewhere first, or the table only measures how well the recipe was fitted to it. This
reads a trained-parts folder (default: the shipped one) on the *validation* sentences
(a set in :data:`mfutils.data.instruction_banks.VALIDATION_SETS`, named by the date it was written, the newest
by default; in no bank and read by no chapter), with the
chapter's own conflicts (its defaults: 256 samples, so 32 conflicts per sentence, seed 0), and
applies :func:`accepts`, whose thresholds are chapter 00's behaviour targets (:mod:`mfutils.findings.rules`):
the validation sentences in place of the test ones, and the training record's final monitor
(every group, the consistent ones included, and since 2026-12-07 the conflicts asked with the
core templates alone: :func:`mfutils.models.train_pretrained.final_monitor_items`) in place of
the chapter's held-out sets; the paper's
two sentences are left to the chapter. A candidate whose final monitor misses its target is
rejected without reading the validation sentences.

A recipe is judged on two trainings, seeds :data:`~mfutils.findings.rules.RECIPE_SEEDS` (``--parts`` and
``--replicate``, identical but for the seed), by the means of their final monitors and of their
validation ratios (64 conflicts per sentence). One seed alone is never accepted: seed 1 of the
first shipped recipe missed the monitor by two items and one where seed 0 met it, which is within the
monitor's own sampling error (rule written 2026-12-02, before any later candidate was trained).
Seed 0 is trained first; when its monitor alone already rules out a mean of 95% in some group
(:func:`unreachable_groups`), the check says so and seed 1 is not trained (amended 2026-12-03).
A check of seed 0 alone never reads the validation sentences, whatever its monitor: they are read
once, on both seeds together (2026-12-04).
Only a recipe it accepts is shipped, as its seed-0 parts; chapter 00's table is then read once,
whatever it shows. ``--record PATH`` writes the trial's record (bank, training
configuration and curve, final monitor, verdict, validation table) from the folder's
``training.json`` and this run, for ``models/recipe_trials/``; it never replaces a record.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import pandas as pd

from mfutils.findings.rules import MIN_PHRASINGS_MET, RECIPE_SEEDS, TARGET_HELDOUT, TARGET_PHRASING


#: the validation table's columns the check prints and a trial's record keeps
VALIDATION_COLUMNS = ["direction", "instruction", "n", "following_ratio", "ci_low", "ci_high"]


def monitor_met(final_eval: dict[str, float]) -> tuple[bool, list[str]]:
    """The rule's first half: every group of the training record's final monitor (``group ->
    accuracy``) at least :data:`~mfutils.findings.rules.TARGET_HELDOUT`. Returns it and one line per group."""
    lines, ok = [], True
    for group, acc in final_eval.items():
        met = acc >= TARGET_HELDOUT
        ok &= met
        lines.append(f"monitor {group}: {acc:.1%} (≥ {TARGET_HELDOUT:.0%}: {'met' if met else 'NOT met'})")
    return ok, lines


def accepts(final_eval: dict[str, float], validation: pd.DataFrame) -> tuple[bool, list[str]]:
    """The rule, fixed before any candidate was read: :func:`monitor_met`, and per direction at
    least :data:`~mfutils.findings.rules.MIN_PHRASINGS_MET` validation sentences followed at least
    :data:`~mfutils.findings.rules.TARGET_PHRASING` of the time. Returns the verdict and one line per
    criterion."""
    ok, lines = monitor_met(final_eval)
    met, validation_lines = validation_met(validation)
    return ok and met, lines + validation_lines


def validation_met(validation: pd.DataFrame) -> tuple[bool, list[str]]:
    """The rule's second half: per direction at least :data:`~mfutils.findings.rules.MIN_PHRASINGS_MET`
    sentences of ``validation`` followed at least :data:`~mfutils.findings.rules.TARGET_PHRASING` of the
    time. Returns it and one line per direction."""
    ok, lines = True, []
    for direction in ("image", "text"):
        rows = validation[validation["direction"] == direction]
        n = int((rows["following_ratio"] >= TARGET_PHRASING).sum())
        met = n >= MIN_PHRASINGS_MET
        ok &= met
        lines.append(f"validation, {direction} side: {n} of {len(rows)} sentences ≥ {TARGET_PHRASING:.0%} "
                     f"(≥ {MIN_PHRASINGS_MET}: {'met' if met else 'NOT met'})")
    return ok, lines


def pooled_monitor(finals: list[dict[str, float]]) -> dict[str, float]:
    """The seeds' final monitors (``group -> accuracy`` each, the same groups) as one: each
    group's mean over the seeds."""
    groups = list(finals[0])
    if any(list(f) != groups for f in finals):
        raise ValueError(f"the seeds' monitors hold different groups: {[list(f) for f in finals]}")
    return {g: sum(f[g] for f in finals) / len(finals) for g in groups}


def unreachable_groups(finals: list[dict[str, float]], seeds: int = len(RECIPE_SEEDS)) -> list[str]:
    """The monitor groups whose mean over ``seeds`` trainings cannot reach
    :data:`~mfutils.findings.rules.TARGET_HELDOUT` whatever the untrained ones read (each at most 100%),
    given the final monitors ``finals`` (``group -> accuracy`` each) of those already trained. The
    amended two-seed rule (2026-12-03): when seed 0 has such a group, seed 1 is not trained."""
    missing = seeds - len(finals)
    return [g for g in finals[0] if (sum(f[g] for f in finals) + missing) / seeds < TARGET_HELDOUT]


def pooled_validation(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The seeds' validation tables (the same sentences, on the same conflicts) as one: per
    sentence the mean following ratio and the summed ``n``, with each seed's ratio beside it
    (``ratio_seed_<i>``, in the order given). The bootstrap intervals stay in each seed's table."""
    keys = ["direction", "instruction"]
    if any(not t[keys].equals(tables[0][keys]) for t in tables):
        raise ValueError("the seeds' validation tables are not of the same sentences")
    out = tables[0][keys].copy()
    out["n"] = sum(t["n"] for t in tables)
    out["following_ratio"] = sum(t["following_ratio"] for t in tables) / len(tables)
    for i, t in enumerate(tables):
        out[f"ratio_seed_{i}"] = t["following_ratio"].to_numpy()
    return out


def replicate_error(configs: list[dict]) -> str | None:
    """Why trainings ``configs`` (``train_config`` each) are not seeds :data:`RECIPE_SEEDS` of one
    recipe, or None when they are."""
    seeds = [c.get("seed") for c in configs]
    if seeds != list(RECIPE_SEEDS):
        return f"the trainings have seeds {seeds}; the rule reads seeds {list(RECIPE_SEEDS)}, in that order"
    rest = [{k: v for k, v in c.items() if k != "seed"} | {"bank": c.get("bank", "shipped")} for c in configs]
    if any(r != rest[0] for r in rest):
        diff = sorted(k for k in set().union(*rest) if len({json.dumps(r.get(k)) for r in rest}) > 1)
        return f"the trainings differ in more than the seed: {', '.join(diff)}"
    return None


def trial_record(training: dict, validation: pd.DataFrame | None, accepted: bool, lines: list[str], date: str,
                 replicates: list[tuple[dict, pd.DataFrame | None]] = (), validation_set: str | None = None,
                 trial: str | None = None) -> dict:
    """A recipe trial's record: ``training`` (the candidate's ``training.json``) with the check's
    verdict, criterion ``lines`` and ``validation`` table (one row per sentence: direction,
    instruction, n, following_ratio, ci_low, ci_high; None: not read, the monitor rejected it);
    ``replicates``: the other seeds' ``(training.json, validation table)``, recorded under
    ``replicates`` the same way; ``validation_set``: the name of the set judged on
    (:data:`mfutils.data.instruction_banks.VALIDATION_SETS`; default the newest); ``trial``: the candidate's
    name where it is not its bank's (a schedule tried on an earlier bank)."""
    from mfutils.data import instruction_banks

    cfg = training["train_config"]
    bank = cfg.get("bank", "shipped")
    validation_set = validation_set or instruction_banks.LATEST_VALIDATION
    return {
        "trial": trial or bank,
        "date": date,
        "bank_change": {"added_to": "mfutils.data.instruction_banks._PRETRAINED_TRAIN (appended; mfutils.data.instruction_banks.PRETRAINED_BANK_TRIALS)",
                        "sentences": list(instruction_banks.PRETRAINED_BANK_TRIALS.get(bank, ())),
                        # how many times each weighted template's sentences stand in the training list
                        **({"weights": instruction_banks.PRETRAINED_BANK_WEIGHTS[bank]}
                           if bank in instruction_banks.PRETRAINED_BANK_WEIGHTS else {})},
        "train_config": cfg,
        "seconds": training["seconds"],
        "machine": training["machine"],
        "parts_sha256": training["parts_sha256"],
        "curve_evals": [r for r in training["curve"] if "eval" in r],
        "final_eval": training["final_eval"],
        "recipe_check": {"accepted": accepted, "criteria": lines,
                         "validation_set": validation_set,
                         "validation_sentences": list(instruction_banks.VALIDATION_SETS[validation_set]),
                         "validation_read": validation is not None,
                         "validation": None if validation is None else validation[VALIDATION_COLUMNS].to_dict("records")},
        "reproduce": reproduce_line(training, [t for t, _ in replicates], validation_set),
    } | ({"replicates": [{"seed": t["train_config"].get("seed"), "parts_sha256": t["parts_sha256"],
                          "seconds": t["seconds"], "curve_evals": [r for r in t["curve"] if "eval" in r],
                          "final_eval": t["final_eval"],
                          "validation": None if v is None else v[VALIDATION_COLUMNS].to_dict("records")}
                         for t, v in replicates]} if replicates else {})


def reproduce_line(training: dict, replicates: list[dict] = (), validation_set: str | None = None) -> str:
    """The commands that retrain ``training`` (and its ``replicates``, ``training.json`` each) and
    check them as this check did, on ``validation_set`` (default: the newest)."""
    from mfutils.data import instruction_banks

    folders = [f"DIR{i}" for i in range(1 + len(replicates))]
    trains = [f"python -m mfutils.models.train_pretrained {training_flags(t['train_config'])} --out {d}"
              for t, d in zip([training, *replicates], folders)]
    check = ("python -m mfutils.models.recipe_check --parts DIR0" + "".join(f" --replicate {d}" for d in folders[1:])
             + f" --validation {validation_set or instruction_banks.LATEST_VALIDATION}")
    return ", ".join(trains) + ", then " + check


def training_flags(cfg: dict) -> str:
    """The ``train_pretrained`` options that retrain ``cfg`` (a ``train_config``): ``--bank`` always,
    and every field that differs from :class:`~mfutils.models.train_pretrained.PretrainedTrainConfig`'s
    default (a seed replicate's ``--seed 1`` among them)."""
    import dataclasses

    from mfutils.models.train_pretrained import PretrainedTrainConfig

    flags = [f"--bank {cfg.get('bank', 'shipped')}"]
    for f in dataclasses.fields(PretrainedTrainConfig):
        if f.name != "bank" and f.name in cfg and cfg[f.name] != f.default:
            flags.append(f"--{f.name.replace('_', '-')} {cfg[f.name]}")
    return " ".join(flags)


def validation_table(num_threads: int = 2, validation_set: str | None = None) -> pd.DataFrame:
    """:func:`mfutils.findings.behaviour.unseen_phrasings` on the validation sentences of ``validation_set``
    (:data:`mfutils.data.instruction_banks.VALIDATION_SETS`; default the newest), for the parts in
    :func:`mfutils.models.pretrained_organism.pretrained_dir`, at chapter 00's defaults."""
    from mfutils.data import instruction_banks
    from mfutils.findings.behaviour import BehaviourSpec, unseen_phrasings
    from mfutils.models.loading import PRETRAINED_ID, load_model
    from mfutils.book.session import configure

    spec = BehaviourSpec(model_id=PRETRAINED_ID, num_threads=num_threads)
    configure(spec)
    bundle = load_model(spec.model_id, device=spec.device, dtype=spec.dtype)
    return unseen_phrasings(bundle, spec, instruction_banks.VALIDATION_SETS[validation_set or instruction_banks.LATEST_VALIDATION])


@contextlib.contextmanager
def _reading(folder: str):
    """Read the parts in ``folder`` through ``MFUTILS_PRETRAINED_DIR``
    (:func:`mfutils.models.pretrained_organism.pretrained_dir`; the merged cache is keyed by the parts'
    digest), and put the variable back as it was afterwards; ``""``: as the variable stands (the
    shipped parts when it is unset)."""
    before = os.environ.get("MFUTILS_PRETRAINED_DIR")
    if folder:
        os.environ["MFUTILS_PRETRAINED_DIR"] = str(Path(folder).resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MFUTILS_PRETRAINED_DIR", None)
        else:
            os.environ["MFUTILS_PRETRAINED_DIR"] = before


def _training(folder: str) -> dict:
    from mfutils.models.pretrained_organism import record

    with _reading(folder):
        return record()


def _validation(folder: str, threads: int, validation_set: str) -> pd.DataFrame:
    with _reading(folder):
        return validation_table(threads, validation_set)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mfutils.models.recipe_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="", help="a trained-parts folder (train_pretrained --out); default: the shipped one")
    ap.add_argument("--replicate", default="",
                    help="the same recipe trained with the rule's other seed (train_pretrained --seed 1 --out DIR)")
    ap.add_argument("--validation", default=None, metavar="DATE",
                    help="the validation set to judge on, by the date it was written "
                         "(mfutils.data.instruction_banks.VALIDATION_SETS); default: the newest")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--record", default="", help="write the trial's record here (JSON; refused if it exists)")
    ap.add_argument("--trial", default=None, metavar="NAME",
                    help="the candidate's name in the record, where it is not its bank's (default: the bank)")
    args = ap.parse_args(argv)
    from mfutils.data import instruction_banks

    validation_set = args.validation or instruction_banks.LATEST_VALIDATION
    if validation_set not in instruction_banks.VALIDATION_SETS:
        print(f"recipe_check: --validation {validation_set}: no such set; one of {sorted(instruction_banks.VALIDATION_SETS)}",
              file=sys.stderr)
        return 2
    if args.record and Path(args.record).exists():
        # checked before the minutes of validation: a record is evidence, never overwritten
        print(f"recipe_check: --record {args.record} exists; give a new path", file=sys.stderr)
        return 2
    from mfutils.models.pretrained_organism import PARTS_FILE

    for flag, folder in (("--parts", args.parts), ("--replicate", args.replicate)):
        missing = [n for n in (PARTS_FILE, "training.json") if folder and not (Path(folder) / n).is_file()]
        if missing:
            # a typo here would otherwise surface as the shipped parts' restore hint, far from its cause
            print(f"recipe_check: {flag} {folder} holds no {' and no '.join(missing)}: give the folder a "
                  "training wrote (`python -m mfutils.models.train_pretrained --out DIR`)", file=sys.stderr)
            return 2
    folders = [args.parts] + ([args.replicate] if args.replicate else [])
    trainings = [_training(f) for f in folders]
    if args.replicate:
        why = replicate_error([t["train_config"] for t in trainings])
        if why:
            print(f"recipe_check: --parts and --replicate are not seeds {list(RECIPE_SEEDS)} of one recipe: {why}",
                  file=sys.stderr)
            return 2
    finals = [t["final_eval"]["accuracy"] for t in trainings]
    final = pooled_monitor(finals)
    tables: list[pd.DataFrame | None] = [None] * len(folders)
    table = None
    ok, lines = monitor_met(final)
    if len(folders) > 1:
        lines = [f"{l} (mean of seeds {', '.join(str(t['train_config'].get('seed')) for t in trainings)})"
                 for l in lines]
    if ok and len(folders) < len(RECIPE_SEEDS):
        # the rule of 2026-12-02 (rules.RECIPE_SEEDS): one run's verdict at the thresholds is within sampling
        # error; and seed 0 is judged first (2026-12-03), so reading the validation set on it alone would spend
        # a reading on a candidate that seed 1 may still reject
        ok = False
        lines.append(f"validation sentences not read: one seed only; a recipe is judged on seeds {list(RECIPE_SEEDS)} "
                     "together (train seed 1, then --replicate)")
    elif ok:
        tables = [_validation(f, args.threads, validation_set) for f in folders]
        table = pooled_validation(tables)
        with pd.option_context("display.width", 140, "display.max_colwidth", 60):
            print(table.to_string(index=False))
        ok, validation_lines = validation_met(table)
        lines += validation_lines
    else:
        # each reading spends some of the validation set's independence: none for a candidate the monitor refuses
        lines.append("validation sentences not read: the final monitor already rejects this candidate")
        if len(folders) < len(RECIPE_SEEDS) and (hopeless := unreachable_groups(finals)):
            lines.append(f"no further seed can change this: the mean of {', '.join(hopeless)} stays below "
                         f"{TARGET_HELDOUT:.0%} even at 100% (seed 1 need not be trained)")
    print("\n".join(lines))
    print("ACCEPTED" if ok else "REJECTED")
    print(json.dumps({"accepted": ok, "validation": None if table is None else
                      table[["direction", "instruction", "following_ratio"]].to_dict("records")}))
    if args.record:
        import datetime as dt

        rec = trial_record(trainings[0], tables[0], ok, lines, dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
                           replicates=list(zip(trainings[1:], tables[1:])), validation_set=validation_set,
                           trial=args.trial)
        out = Path(args.record)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n")
        tmp.rename(out)
        print(f"record written to {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
