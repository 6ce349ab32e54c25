"""Retrain the model organism from scratch (the README's optional third command).

    python -m mfutils.models.train_organism --out models/organism [--check]

Deterministic: with the same seed, thread count and package versions the weights are
bit-identical to the shipped ones; ``--check`` trains into a temporary folder and compares
the tensor digest with ``models/organism/training.json`` instead of overwriting.
"""

from __future__ import annotations

import json
import sys

from mfutils.models import train_cli
from mfutils.models.organism import OrganismConfig
from mfutils.runs.paths import organism_dir
from mfutils.models.training import TrainConfig, train, weights_digest


def main(argv: list[str] | None = None) -> int:
    return train_cli.run(argv, prog="python -m mfutils.models.train_organism", doc=__doc__, config_cls=TrainConfig,
                         arch_cls=OrganismConfig, train=train, default_out=organism_dir(),
                         shipped=lambda: json.loads((organism_dir() / "training.json").read_text()),
                         digest_key="weights_sha256", what="organism",
                         shipped_digest=lambda: weights_digest(organism_dir()))


if __name__ == "__main__":
    sys.exit(main())
