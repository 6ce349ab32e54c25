"""Small helpers the tests share."""

from __future__ import annotations


def fill_declared(writer) -> None:
    """Empty stand-ins for the files a chapter's run declares (``spec.OUTPUTS``) that a test did
    not write, so that a run holding only what the test needs can finish."""
    for name in getattr(writer.spec, "OUTPUTS", ()):
        if not writer.path(name).exists():
            writer.path(name).write_bytes(b"{}" if name.endswith(".json") else b"")


def assert_scores_its_training_record(bundle, rec: dict) -> None:
    """``bundle`` (a loaded pretrained organism) scores what its training measured on the same
    held-out monitor, group by group, within one item (argmax ties the merge's different float
    order may break)."""
    from mfutils.data import instruction_banks, synthetic
    from mfutils.models.train_pretrained import accuracy

    monitor = synthetic.make_split("eval", rec["final_eval"]["items"], seed=rec["train_config"]["seed"] + 2,
                                   phrasings=instruction_banks.PRETRAINED_PHRASINGS)
    sizes: dict = {}
    for it in monitor:
        g = it.kind if it.target is None else f"{it.kind}/{it.target}"
        sizes[g] = sizes.get(g, 0) + 1
    got = accuracy(bundle.model, bundle.processor, monitor)
    want = rec["final_eval"]["accuracy"]
    assert got.keys() == want.keys()
    for g in want:
        assert abs(got[g] - want[g]) <= 1 / sizes[g] + 1e-9, (g, got[g], want[g])
