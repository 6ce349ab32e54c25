"""An exclusive lock on a file, released by the operating system when its holder's process
ends however it ends (a crash or a kill leaves no stale lock to clean up)."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO


class LockHeld(RuntimeError):
    """Another process holds the lock; ``holder`` is what it wrote of itself."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


def hold(path: Path) -> IO[str]:
    """Take ``path``'s lock without waiting; returns the open file, whose closing releases it.
    Raises :class:`LockHeld` naming the holder (pid, host, start, command).

    The file stays after release: removing it would let a third process lock a new file while
    a second still holds the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that did not say"
        handle.close()
        raise LockHeld(path, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {' '.join(sys.argv[:2])}\n")
    handle.flush()
    return handle
