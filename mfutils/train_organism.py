"""Retrain the model organism from scratch (the README's optional third command).

    python -m mfutils.train_organism --out models/organism [--check]

Deterministic: with the same seed, thread count and package versions the weights are
bit-identical to the shipped ones; ``--check`` trains into a temporary folder and compares
the tensor digest with ``models/organism/training.json`` instead of overwriting.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

from .organism import OrganismConfig
from .paths import organism_dir
from .training import TrainConfig, train, weights_digest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mfutils.train_organism", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(organism_dir()))
    ap.add_argument("--check", action="store_true", help="train into a temp folder and compare with the shipped weights")
    for f in fields(TrainConfig):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = ap.parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    if args.check:
        shipped = json.loads((organism_dir() / "training.json").read_text())
        with tempfile.TemporaryDirectory() as tmp:
            rec = train(Path(tmp) / "organism", TrainConfig(**shipped["train_config"]),
                        OrganismConfig(**shipped["architecture"]))
        same = rec["weights_sha256"] == shipped["weights_sha256"] == weights_digest(organism_dir())
        print(f"retrained digest {rec['weights_sha256'][:16]}, shipped {shipped['weights_sha256'][:16]}: "
              + ("IDENTICAL" if same else "DIFFERENT"))
        return 0 if same else 1
    out = Path(args.out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    rec = train(tmp, cfg)  # only a finished training replaces the shipped organism
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"organism written to {out} in {rec['train_seconds']} s; digest {rec['weights_sha256'][:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
