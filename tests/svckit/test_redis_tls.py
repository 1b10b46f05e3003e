"""``rediss://`` keeps the fast path: the auto-pipelined client speaks TLS (asyncio's ssl)
to a real TLS-only redis-server, and redis-py's client from the same factory does too."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxoffice.ports import free_port
from svckit.redis_client import make_async_redis, make_pipelined, resolve
from svckit.redis_pipeline import PipelinedRedis, encode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("redis-server") and shutil.which("openssl")),
        reason="needs redis-server (built with TLS) and openssl",
    ),
]


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A TLS-only redis-server with a self-signed certificate for 127.0.0.1; its URL."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.skip("this redis-server has no TLS")
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "TLS redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait(10)


async def test_the_fast_path_speaks_tls(tls_redis: str) -> None:
    options = resolve(tls_redis, timeout_s=5)
    assert options.mode == "standalone"
    fast = make_pipelined(options)
    assert isinstance(fast, PipelinedRedis)
    slow = make_async_redis(options)
    try:
        assert await fast.execute(encode("SET", "k", "v")) == b"OK"
        assert await slow.get("k") == b"v"
    finally:
        await fast.aclose()
        await slow.aclose()
