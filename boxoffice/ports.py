"""Free loopback ports for the servers that the dev tools, the simulator, the benchmarks and
the test suite start as separate processes."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

# SystemRandom: a test that seeds the module-level generator must not make two processes
# draw the same ports.
_RANDOM = random.SystemRandom()
_HANDED_OUT: set[int] = set()
_LOCK = threading.Lock()
_TRIES = 200


def free_port() -> int:
    """A TCP port that is free on loopback now, chosen below the kernel's ephemeral range.

    A port that ``bind(("127.0.0.1", 0))`` picks lies in the ephemeral range. Between that
    check and the new server's own bind, any outgoing connection on the machine may take it
    as its source port, and the server then fails with EADDRINUSE. A busy suite opens
    thousands of connections, and that once kept a cluster node from starting in CI. Only
    listeners take ports below the range, so that race is gone. This process also never hands
    out the same port twice.
    """
    low, high = _candidate_range()
    for _ in range(_TRIES if high > low else 0):
        port = _RANDOM.randint(low, high)
        with _LOCK:
            if port in _HANDED_OUT:
                continue
            if _bindable(port):
                _HANDED_OUT.add(port)
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _candidate_range() -> tuple[int, int]:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        ephemeral_low = int(text.split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default; elsewhere the bind check still holds
    return max(10000, ephemeral_low - 12000), ephemeral_low - 1


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
