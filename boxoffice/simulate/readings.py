"""Readings of this machine and its processes from Linux ``/proc``: CPU seconds of a process,
the load average, CPU count and memory. Standard library only: the simulator and the
benchmarks (``bench/benchkit.py``) both read them here."""

from __future__ import annotations

import os
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


def cpu_by_name(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process still running, and of this one (the caller
    itself) as ``simulator``."""
    out = {"simulator": sum(os.times()[:2])}
    for name, pid in pids.items():
        seconds = cpu_seconds(pid)
        if seconds is not None:
            out[name] = seconds
    return out


def machine() -> dict[str, Any]:
    """CPU count and memory of this machine."""
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "ram_gb": mem_gb}


def load_average() -> str | None:
    """The 1/5/15-minute load averages (other work on the machine skews every figure)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None
