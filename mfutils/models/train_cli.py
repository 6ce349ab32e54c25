"""The command line both organism trainers share: train into ``--out`` or ``--check`` a retrain.

Only a finished training replaces what ships: it is written to ``<out>.partial`` first, and
``--check`` trains into a temporary folder and compares digests without writing anything.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Callable


def _option_type(default):
    """``type(default)``, except that a bool option reads true/false (``bool("false")`` is True)."""
    if not isinstance(default, bool):
        return type(default)

    def flag(text: str) -> bool:
        value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower())
        if value is None:
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        return value

    return flag


def processor_note(shipped: dict, here: dict) -> str:
    """Why a retrain may differ: ``shipped`` and ``here`` are trainings' ``machine`` records."""
    was = shipped.get("cpu", "a processor it did not record")
    now = here.get("cpu", "unknown")
    if was == now:
        return (f"both trainings ran on {now}: a different digest on the same processor means the seed, "
                "thread count or package versions differ, or the training is not deterministic")
    # CPU kernels take other code paths on other processors; a training drifts apart within ~100 steps
    return (f"the shipped training ran on {was}, this one on {now}: bit-identical retrains hold only on the "
            "same processor, with the same seed, thread count and package versions")


def run(argv: list[str] | None, *, prog: str, doc: str, config_cls, arch_cls, train: Callable,
        default_out: Path, shipped: Callable[[], dict], digest_key: str, what: str,
        shipped_digest: Callable[[], str] | None = None) -> int:
    """Parse ``argv``; every field of ``config_cls`` is an option.

    ``train(out_dir, cfg, arch) -> record``; ``shipped()`` reads the shipped training record;
    ``record[digest_key]`` is the digest ``--check`` compares, also against
    ``shipped_digest()`` (the digest of the files themselves) when given.
    """
    ap = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(default_out))
    ap.add_argument("--check", action="store_true", help=f"train into a temp folder and compare with the shipped {what}")
    for f in fields(config_cls):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=_option_type(f.default), default=f.default)
    args = ap.parse_args(argv)
    try:
        cfg = config_cls(**{f.name: getattr(args, f.name) for f in fields(config_cls)})
    except ValueError as e:  # a value the config refuses (an unknown --bank): usage and the reason, no traceback
        ap.error(str(e))
    if args.check:
        rec_shipped = shipped()
        with tempfile.TemporaryDirectory() as tmp:
            rec = train(Path(tmp) / "out", config_cls(**rec_shipped["train_config"]),
                        arch_cls(**rec_shipped["architecture"]))
        same = rec[digest_key] == rec_shipped[digest_key]
        if shipped_digest is not None:
            same = same and rec[digest_key] == shipped_digest()
        print(f"retrained digest {rec[digest_key][:16]}, shipped {rec_shipped[digest_key][:16]}: "
              + ("IDENTICAL" if same else "DIFFERENT"))
        if not same:
            print(processor_note(rec_shipped.get("machine", {}), rec.get("machine", {})))
        return 0 if same else 1
    out = Path(args.out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    rec = train(tmp, cfg, arch_cls())
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"{what} written to {out}; digest {rec[digest_key][:16]}")
    return 0
