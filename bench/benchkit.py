"""What every benchmark here needs: free ports, a process's CPU time and the load average
(read by ``boxoffice/simulate/readings.py``, as the simulator reads them), and serving a
stand-in app in a subprocess. Imported by path (``bench/`` is ``sys.path[0]`` when a script
of it runs); puts the repository root on ``sys.path`` for the project's packages."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from boxoffice.ports import free_port  # noqa: E402
from boxoffice.simulate.readings import cpu_seconds as process_cpu_seconds  # noqa: E402
from boxoffice.simulate.readings import load_average  # noqa: E402
from shared.config import CommonSettings  # noqa: E402
from svckit.http_server import HTTP_PROTOCOL  # noqa: E402
from tests.fixtures.services import EmbeddedRedis  # noqa: E402

__all__ = [
    "HTTP_PROTOCOL",
    "LIMITER_ADMITS_ALL",
    "ROOT",
    "add_store_arguments",
    "cpu_seconds",
    "free_port",
    "load_average",
    "redis_for_bench",
    "serve",
    "stores_for_bench",
]

# ``BOXOFFICE_RATE_LIMIT`` for benches that keep the limiter on: it still makes its Redis
# round trip on every request but admits all of them (one load generator is one address, and
# the cost to measure is that of counting, not of answering 429).
LIMITER_ADMITS_ALL = '{"policies": {"browse": {"rate": 1e9, "burst": 1000000000}}}'


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far; 0 if it is gone."""
    return process_cpu_seconds(pid) or 0.0


def redis_for_bench(url: str | None) -> tuple[str, EmbeddedRedis | None]:
    """``url``, else that of a private embedded Valkey started for this run (the second item:
    stop it when done)."""
    if url is not None:
        return url, None
    server = EmbeddedRedis()
    server.start()
    return server.url, server


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--database-url`` and ``--redis-url``, both optional (see :func:`stores_for_bench`)."""
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--redis-url", default=None, help="default: an embedded Valkey")


@contextmanager
def stores_for_bench(database_url: str | None, redis_url: str | None) -> Iterator[tuple[str, str]]:
    """(database URL, Redis URL) for a run: the given ones, else a temporary SQLite file and
    a private embedded Valkey, removed and stopped on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="bx-bench-"))
    url, embedded = redis_for_bench(redis_url)
    try:
        yield database_url or f"sqlite:///{tmp / 'bench.sqlite3'}", url
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# The event loop the services run on (``BOXOFFICE_EVENT_LOOP``, default asyncio).
EVENT_LOOP = CommonSettings().event_loop


def serve(app: Any, port: int) -> None:
    """Serve ``app`` on ``port`` the way the services run (``EVENT_LOOP``, httptools with one
    write per response, no access log) until the process is stopped."""
    import uvicorn

    uvicorn.run(
        app, port=port, loop=EVENT_LOOP, http=HTTP_PROTOCOL, access_log=False, log_level="warning"
    )


@contextmanager
def private_redis_server(binary: str = "redis-server") -> Iterator[str]:
    """A real redis-server of this machine on a free port, without persistence, for the
    run (its own CPU counters measure only the bench); yields its URL."""
    import subprocess
    import time

    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        import redis

        client = redis.Redis(port=port)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()
