"""Small helpers the tests share."""

from __future__ import annotations


def fill_declared(writer) -> None:
    """Empty stand-ins for the files a chapter's run declares (``spec.OUTPUTS``) that a test did
    not write, so that a run holding only what the test needs can finish."""
    for name in getattr(writer.spec, "OUTPUTS", ()):
        if not writer.path(name).exists():
            writer.path(name).write_bytes(b"{}" if name.endswith(".json") else b"")
