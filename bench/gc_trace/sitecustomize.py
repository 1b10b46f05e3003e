"""Loaded into a benchmarked server (its ``PYTHONPATH``) by ``bench/queue_sse.py --gc-trace``:
appends one line per full (oldest-generation) garbage collection to the file named by
``BOXOFFICE_BENCH_GC_LOG``: the wall-clock time it started and how long it took (s)."""

from __future__ import annotations

import gc
import os
import time

_LOG = os.environ.get("BOXOFFICE_BENCH_GC_LOG")
_started = [0.0, 0.0]


def _trace(phase: str, info: dict[str, int]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _started[0], _started[1] = time.time(), time.perf_counter()
        return
    with open(_LOG or os.devnull, "a") as log:
        log.write(f"{_started[0]:.3f} {time.perf_counter() - _started[1]:.4f}\n")


if _LOG:
    gc.callbacks.append(_trace)
