"""The gateway's edges under attack (issue 16), through raw sockets into a served gateway
(our uvicorn protocol, real lifespan) in front of a real socket upstream: slow bodies must
not pin upstream connections, oversized heads and duplicate credentials are refused before
anything is forwarded, and a body the guest-login fast path cannot parse is a 422."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from boxoffice.ports import free_port
from gateway.app import create_app
from gateway.config import Settings
from shared.tokens import issue_access_token
from svckit.http_server import HTTP_PROTOCOL
from tests.fixtures.raw_server import RawServer

SECRET = "edge-test-secret-0123456789abcdef0123456789"
POOL = 4


class Backend(RawServer):
    """A keep-alive upstream that answers every request 200 with a small JSON body and
    records what it was sent; ``open`` counts the connections the gateway holds to it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, bytes]] = []  # (request line, head)
        self.open = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, _, rest = head.partition(b"\r\n")
                length = 0
                for h in rest.lower().split(b"\r\n"):
                    if h.startswith(b"content-length:"):
                        length = int(h.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                self.requests.append((line, head))
                body = b'{"items": [], "total": 0, "offset": 0, "limit": 20}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def gateway_port(redis_url: str, backend: Backend) -> AsyncIterator[int]:
    """A gateway with a pool of four upstream connections, served on a free port."""
    upstream = f"http://127.0.0.1:{backend.port}"
    settings = Settings(
        redis_url=redis_url,
        secret_key=SECRET,
        api_server_url=upstream,
        ticket_server_url=upstream,
        rate_limit={"enabled": False},
        upstream_max_connections=POOL,
        upstream_pool_timeout_s=0.5,
        upstream_read_timeout_s=2.0,
        request_body_idle_timeout_s=1.0,
        request_body_timeout_s=3.0,
        request_head_max_bytes=16384,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            http=HTTP_PROTOCOL,
            log_level="error",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )  # fmt: skip
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield port
    server.should_exit = True
    await task


async def _exchange(port: int, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send ``request`` on a raw socket; the status and JSON body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(h.split(b":", 1)[1])
        for h in head.lower().split(b"\r\n")
        if h.startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    writer.close()
    assert b"content-type: application/problem+json" in head or b" 2" in head[:13]
    return int(head[9:12]), orjson.loads(body)


def _token(user: str) -> bytes:
    return issue_access_token(secret=SECRET, user_id=user, nickname=user, ttl_s=600).encode()


class TestSlowBodies:
    @pytest.mark.parametrize(
        "framing",
        [b"transfer-encoding: chunked\r\n\r\n1\r\n{\r\n", b"content-length: 100000\r\n\r\n{"],
        ids=["chunked", "large"],
    )
    async def test_stalled_bodies_pin_no_upstream_connection(
        self, gateway_port: int, backend: Backend, framing: bytes
    ) -> None:
        """The review's repro: as many stalled admin bodies as the pool has connections."""
        stalled = []
        for _ in range(POOL):
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway_port)
            writer.write(
                b"POST /api/admin/venues HTTP/1.1\r\nhost: gw\r\n"
                b"content-type: application/json\r\n" + framing
            )
            stalled.append((reader, writer))
        try:
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}") as client:
                for _ in range(8):
                    r = await client.get("/api/venues", timeout=5)
                    assert r.status_code == 200, r.text
            assert all(not line.startswith(b"POST") for line, _ in backend.requests)
            assert backend.open == 1  # the GETs' one kept-alive connection
            for reader, _ in stalled:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 408 ")
                assert b"application/problem+json" in head
            assert all(not line.startswith(b"POST") for line, _ in backend.requests)
            await asyncio.sleep(0.1)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}") as client:
                metrics = (await client.get("/metrics")).text
            # The gateway counts them as what the clients were told (not "client gone").
            assert (
                'boxoffice_http_requests_total{method="POST",route="admin",service="gateway",'
                f'status="408"}} {POOL}.0' in metrics
            )
        finally:
            for _, writer in stalled:
                writer.close()


class TestRefusedBeforeForwarding:
    async def test_a_huge_head_is_431_and_nothing_is_forwarded(
        self, gateway_port: int, backend: Backend
    ) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway_port)
        with contextlib.suppress(ConnectionError):
            writer.write(b"GET /api/venues HTTP/1.1\r\nhost: gw\r\nx-big: " + b"a" * 65536)
            writer.write(b"\r\n\r\n")
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 431 ")
        assert backend.requests == []

    @pytest.mark.parametrize("name", [b"authorization", b"x-admission-token"])
    async def test_duplicate_credentials_are_400(
        self, gateway_port: int, backend: Backend, name: bytes
    ) -> None:
        """User A's token first, user B's second: the gateway and a backend must not each
        believe another one, so neither is believed."""
        values = [b"Bearer " + _token("A"), b"Bearer " + _token("B")]
        if name == b"x-admission-token":
            values = [b"adm-a", b"adm-b"]
        auth = b"" if name == b"authorization" else b"authorization: Bearer " + _token("A")
        request = (
            b"GET /api/ticketing/me/reservations HTTP/1.1\r\nhost: gw\r\n"
            + (auth + b"\r\n" if auth else b"")
            + b"".join(name + b": " + v + b"\r\n" for v in values)
            + b"\r\n"
        )
        status, problem = await _exchange(gateway_port, request)
        assert status == 400
        assert problem["type"].endswith("/duplicate-header")
        assert backend.requests == []

    async def test_one_authorization_is_forwarded(
        self, gateway_port: int, backend: Backend
    ) -> None:
        token = _token("A")
        request = (
            b"GET /api/ticketing/me/reservations HTTP/1.1\r\nhost: gw\r\n"
            b"authorization: Bearer " + token + b"\r\n\r\n"
        )
        status, _ = await _exchange(gateway_port, request)
        assert status == 200
        (_, head), *_ = backend.requests
        assert head.lower().count(b"authorization: ") == 1


async def test_deeply_nested_json_at_guest_login_is_422(gateway_port: int) -> None:
    body = b"[" * 2000
    request = (
        b"POST /api/auth/guest HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    status, problem = await _exchange(gateway_port, request)
    assert status == 422
    assert problem["status"] == 422
