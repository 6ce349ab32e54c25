"""Which CPU a run had and how fast it multiplies matrices, so that times recorded on one
machine can be read on another.

The book's chapters are executed on whatever 2-core machine a session has, and these differ by
a factor of five (chapter 0: 127 s on the machine that executed the book, 679 s on an AMD EPYC
Zen 1, measured 2026-12-02). Nearly all of a chapter's time is the model's matrix products, so
a short single-thread float32 matmul probe (:func:`matmul_gflops`) is a fair measure of how
fast a chapter will run; :mod:`mfutils.book.nbval_budget` scales each recorded time by the probe of
the machine that recorded it over this machine's.

The CPU's name matters for a second reason: CPU kernels pick different code paths on
different processors, so re-executing a chapter on another CPU can move its floats in the
sixth digit (seen 2026-12-02). Bit-for-bit reruns hold on the same machine and packages.
"""

from __future__ import annotations

import platform
import time
from functools import lru_cache
from pathlib import Path

#: the probe's matrix side: big enough that one product is compute-bound, small enough that
#: the probe takes a fraction of a second on a slow core
PROBE_N = 384
PROBE_REPEATS = 7


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's marketing name ("AMD EPYC", "Intel(R) Xeon(R) ..."), or what
    :func:`platform.processor` says where ``/proc/cpuinfo`` has none."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@lru_cache(maxsize=1)
def matmul_gflops() -> float:
    """Single-thread float32 matrix-product speed (GFLOP/s), the median of
    :data:`PROBE_REPEATS` products of two ``(PROBE_N, PROBE_N)`` matrices; measured once per
    process. The thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(PROBE_N, PROBE_N, generator=g)
        b = torch.randn(PROBE_N, PROBE_N, generator=g)
        a @ b  # first call pays for allocation and kernel selection
        times = []
        for _ in range(PROBE_REPEATS):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    median = sorted(times)[len(times) // 2]
    return round(2 * PROBE_N ** 3 / median / 1e9, 1)


def training_machine() -> dict[str, str]:
    """The ``machine`` entry of a training's record: Python, torch, the architecture and the
    processor's name (a retrain is bit-identical only on the same processor)."""
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(), "cpu": cpu_model()}


def processor_name(machine: dict[str, str]) -> str:
    """The processor a training record's ``machine`` names: its ``cpu``, or for a record that
    predates that field (the shipped parts) its architecture."""
    return machine.get("cpu", machine["processor"])
