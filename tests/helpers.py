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
    from mfutils.models.train_pretrained import accuracy, final_monitor_items

    cfg = rec["train_config"]
    sets = final_monitor_items(cfg["seed"], rec["final_eval"]["items"], cfg.get("bank", "shipped"))
    want = rec["final_eval"]["accuracy"]
    for prefix, items in sets.items():
        mine = {g.removeprefix(prefix): v for g, v in want.items() if (g.startswith(prefix) if prefix else " " not in g)}
        if not mine:  # a record from before the core set (2026-12-07)
            continue
        sizes: dict = {}
        for it in items:
            g = it.kind if it.target is None else f"{it.kind}/{it.target}"
            sizes[g] = sizes.get(g, 0) + 1
        got = accuracy(bundle.model, bundle.processor, items)
        assert got.keys() == mine.keys()
        for g in mine:
            assert abs(got[g] - mine[g]) <= 1 / sizes[g] + 1e-9, (prefix, g, got[g], mine[g])
