"""Judge a candidate training of the pretrained organism before it replaces the shipped parts.

    python -m mfutils.recipe_check [--parts DIR]

Chapter 00's unseen-sentence table is a test set: a recipe changed to fix its failures must be
judged elsewhere first, or the table only measures how well the recipe was fitted to it. This
reads a trained-parts folder (default: the shipped one) on the *validation* sentences
(:data:`mfutils.synthetic.VALIDATION_TEMPLATES`, in no bank and read by no chapter), with the
chapter's own conflicts (its defaults: 256 samples, so 32 conflicts per sentence, seed 0), and
applies :func:`accepts`, whose thresholds are chapter 00's behaviour targets (:mod:`mfutils.rules`):
the validation sentences in place of the test ones, and the training record's final monitor
(every group, the consistent ones included) in place of the chapter's held-out sets; the paper's
two sentences are left to the chapter. Only a candidate it accepts is shipped; chapter 00's table
is then read once, whatever it shows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from .rules import MIN_PHRASINGS_MET, TARGET_HELDOUT, TARGET_PHRASING


def accepts(final_eval: dict[str, float], validation: pd.DataFrame) -> tuple[bool, list[str]]:
    """The rule, fixed before any candidate was read: every group of the training record's
    final monitor (``group -> accuracy``) at least :data:`~mfutils.rules.TARGET_HELDOUT`, and
    per direction at least :data:`~mfutils.rules.MIN_PHRASINGS_MET` validation sentences
    followed at least :data:`~mfutils.rules.TARGET_PHRASING` of the time. Returns the verdict
    and one line per criterion."""
    lines, ok = [], True
    for group, acc in final_eval.items():
        met = acc >= TARGET_HELDOUT
        ok &= met
        lines.append(f"monitor {group}: {acc:.1%} (≥ {TARGET_HELDOUT:.0%}: {'met' if met else 'NOT met'})")
    for direction in ("image", "text"):
        rows = validation[validation["direction"] == direction]
        n = int((rows["following_ratio"] >= TARGET_PHRASING).sum())
        met = n >= MIN_PHRASINGS_MET
        ok &= met
        lines.append(f"validation, {direction} side: {n} of {len(rows)} sentences ≥ {TARGET_PHRASING:.0%} "
                     f"(≥ {MIN_PHRASINGS_MET}: {'met' if met else 'NOT met'})")
    return ok, lines


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
    args = ap.parse_args(argv)
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

    table = validation_table(args.threads)
    with pd.option_context("display.width", 120, "display.max_colwidth", 60):
        print(table[["direction", "instruction", "n", "following_ratio", "ci_low", "ci_high"]].to_string(index=False))
    ok, lines = accepts(record()["final_eval"]["accuracy"], table)
    print("\n".join(lines))
    print("ACCEPTED" if ok else "REJECTED")
    print(json.dumps({"accepted": ok, "validation": table[["direction", "instruction", "following_ratio"]].to_dict("records")}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
