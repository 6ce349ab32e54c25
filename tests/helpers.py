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
    from mfutils.models.train_pretrained import CORE_PREFIX, accuracy, final_monitor_items

    cfg = rec["train_config"]
    sets = final_monitor_items(cfg["seed"], rec["final_eval"]["items"], cfg.get("bank", "shipped"))
    want = rec["final_eval"]["accuracy"]
    if not any(g.startswith(CORE_PREFIX) for g in want):  # a record from before the core set (2026-12-07)
        del sets[CORE_PREFIX]
    scored = set()
    for prefix, items in sets.items():
        sizes: dict = {}
        for it in items:
            g = it.kind if it.target is None else f"{it.kind}/{it.target}"
            sizes[g] = sizes.get(g, 0) + 1
        for g, acc in accuracy(bundle.model, bundle.processor, items).items():
            assert abs(acc - want[prefix + g]) <= 1 / sizes[g] + 1e-9, (prefix + g, acc, want[prefix + g])
            scored.add(prefix + g)
    assert scored == want.keys()
