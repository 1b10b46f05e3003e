"""A Sentinel URL works end to end: a private redis-server watched by a private Sentinel
(``redis-server --sentinel``), reached only through ``redis+sentinel://``."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from boxoffice.ports import free_port
from svckit.redis_client import make_async_redis, make_sync_redis, resolve

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
]


def _wait_ping(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis(port=port, socket_timeout=0.5) as client:
                if client.ping():
                    return
        except redis.RedisError:
            assert time.monotonic() < deadline, f"nothing answers on {port}"
            time.sleep(0.05)


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    """``redis+sentinel://`` of a master named ``bx`` with one Sentinel watching it."""
    master, sentinel = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor bx 127.0.0.1 {master} 1\n")
    procs = [
        subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(master),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),  # fmt: skip
        subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),  # fmt: skip
    ]
    try:
        _wait_ping(master)
        _wait_ping(sentinel)
        yield f"redis+sentinel://127.0.0.1:{sentinel}/bx/0"
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


async def test_clients_find_the_master_through_sentinel(sentinel_url: str) -> None:
    options = resolve(sentinel_url, timeout_s=2)
    assert options.mode == "sentinel"
    sync = make_sync_redis(options, decode_responses=True)
    client = make_async_redis(options, decode_responses=True)
    try:
        assert sync.set("k", "v")
        assert await client.get("k") == "v"
    finally:
        sync.close()
        await client.aclose()
