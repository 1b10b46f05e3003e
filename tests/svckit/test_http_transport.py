"""The gateway's own HTTP/1.1 transport against a real (tiny, in-process) socket server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from boxoffice.ports import free_port
from svckit.http_transport import _HIGH_WATER, FastTransport
from tests.fixtures.raw_server import RawServer

BIG = 10 * 1024 * 1024


class Upstream(RawServer):
    """A deliberately small HTTP/1.1 server whose paths misbehave on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.drop_next = False
        self.requests: list[tuple[bytes, bytes, dict[bytes, bytes], bytes]] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target, _ = lines[0].split(b" ")
                headers = {}
                for line in lines[1:]:
                    if b":" in line:
                        k, v = line.split(b":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = b""
                if b"content-length" in headers:
                    body = await reader.readexactly(int(headers[b"content-length"]))
                elif headers.get(b"transfer-encoding") == b"chunked":
                    while True:
                        size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                        chunk = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += chunk[:-2]
                self.requests.append((method, target, headers, body))
                if not await self._respond(method, target, body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _respond(
        self, method: bytes, target: bytes, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if target == b"/reset":
            return False  # close without a byte
        if self.drop_next:
            self.drop_next = False
            return False  # a kept-alive connection dies under the next request
        if target == b"/slow":
            await asyncio.sleep(5)
        if target == b"/big":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % BIG)
            for _ in range(BIG // 65536):
                writer.write(b"b" * 65536)
                await writer.drain()
            return True
        if target == b"/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"hello ", b"chunked ", b"world"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
            return True
        if target == b"/eof":
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
            await writer.drain()
            return False
        if target == b"/close-after":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
            return False
        payload = body or b"ok"
        writer.write(
            b"HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\nx-up: 1\r\n"
            b"content-length: %d\r\n\r\n" % len(payload)
        )
        if method != b"HEAD":
            writer.write(payload)
        await writer.drain()
        return True


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[FastTransport]:
    t = FastTransport(max_connections=4, connect_timeout_s=1.0)
    yield t
    await t.aclose()


async def _get(
    t: FastTransport,
    port: int,
    target: bytes,
    method: bytes = b"GET",
    body: bytes | AsyncIterator[bytes] | None = None,
    read_timeout: float | None = 2.0,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    r = await t.request_raw(
        method,
        "127.0.0.1",
        port,
        target,
        [(b"x-test", b"1")],
        body,
        host_header=b"up.test",
        connect_timeout=1.0,
        read_timeout=read_timeout,
    )
    data = b"".join([c async for c in r])
    await r.aclose()
    return r.status, r.headers, data


async def test_keep_alive_reuses_one_connection(upstream: Upstream, transport: FastTransport):
    for _ in range(5):
        status, headers, data = await _get(transport, upstream.port, b"/ok")
        assert (status, data) == (201, b"ok")
        assert (b"x-up", b"1") in headers
    assert upstream.connections == 1
    method, target, sent_headers, _ = upstream.requests[0]
    assert (method, target) == (b"GET", b"/ok")
    assert sent_headers[b"host"] == b"up.test"
    assert sent_headers[b"x-test"] == b"1"


async def test_bodies_fixed_and_chunked(upstream: Upstream, transport: FastTransport) -> None:
    _, _, data = await _get(transport, upstream.port, b"/echo", b"POST", b"payload")
    assert data == b"payload"

    async def parts() -> AsyncIterator[bytes]:
        for p in (b"a" * 70000, b"", b"b" * 10):
            yield p

    _, _, data = await _get(transport, upstream.port, b"/echo", b"POST", parts())
    assert data == b"a" * 70000 + b"b" * 10
    assert upstream.requests[-1][2][b"transfer-encoding"] == b"chunked"
    _, _, data = await _get(transport, upstream.port, b"/chunked")
    assert data == b"hello chunked world"


async def test_head_does_not_wait_for_a_body(upstream: Upstream, transport: FastTransport):
    status, headers, data = await asyncio.wait_for(
        _get(transport, upstream.port, b"/ok", b"HEAD"), 2
    )
    assert (status, data) == (201, b"")
    assert (b"content-length", b"2") in headers


async def test_10_mib_streams_with_bounded_buffer(
    upstream: Upstream, transport: FastTransport
) -> None:
    r = await transport.request_raw(
        b"GET", "127.0.0.1", upstream.port, b"/big", [], None,
        host_header=b"up", connect_timeout=1.0, read_timeout=5.0,
    )  # fmt: skip
    total = 0
    peak = 0
    async for chunk in r:
        total += len(chunk)
        peak = max(peak, r._conn.buffered)
        await asyncio.sleep(0.0005)  # a slow client
    await r.aclose()
    assert total == BIG
    # Reading pauses at the high-water mark: never the whole body in memory.
    assert peak <= _HIGH_WATER + 512 * 1024


async def test_refused_is_connect_error(transport: FastTransport) -> None:
    with pytest.raises(httpx.ConnectError):
        await _get(transport, free_port(), b"/ok")


async def test_reset_is_remote_protocol_error(upstream: Upstream, transport: FastTransport):
    with pytest.raises(httpx.RemoteProtocolError):
        await _get(transport, upstream.port, b"/reset")
    # The pool recovers: next request on a new connection.
    assert (await _get(transport, upstream.port, b"/ok"))[0] == 201


async def test_read_timeout(upstream: Upstream, transport: FastTransport) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await _get(transport, upstream.port, b"/slow", read_timeout=0.2)
    assert (await _get(transport, upstream.port, b"/ok"))[0] == 201


async def test_connection_close_is_honoured(upstream: Upstream, transport: FastTransport):
    assert (await _get(transport, upstream.port, b"/close-after"))[2] == b"ok"
    assert (await _get(transport, upstream.port, b"/ok"))[2] == b"ok"
    assert upstream.connections == 2


async def test_stale_idle_connection_is_replaced_for_get(
    upstream: Upstream, transport: FastTransport
) -> None:
    await _get(transport, upstream.port, b"/ok")
    # The server drops its idle connection (keep-alive timeout) behind our back.
    for writer in upstream.writers:
        writer.close()
    await asyncio.sleep(0.05)
    assert (await _get(transport, upstream.port, b"/ok"))[0] == 201
    assert upstream.connections == 2


async def test_pool_limit_queues_requests(upstream: Upstream) -> None:
    t = FastTransport(max_connections=1)
    try:
        results = await asyncio.gather(*(_get(t, upstream.port, b"/ok") for _ in range(5)))
        assert [r[0] for r in results] == [201] * 5
        assert upstream.connections == 1
    finally:
        await t.aclose()


async def test_httpx_client_api(upstream: Upstream, transport: FastTransport) -> None:
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://127.0.0.1:{upstream.port}"
    ) as client:
        r = await client.post("/echo", content=b"via httpx", headers={"x-a": "b"})
        assert (r.status_code, r.content) == (201, b"via httpx")
        r = await client.get("/chunked")
        assert r.text == "hello chunked world"
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow", timeout=httpx.Timeout(1.0, read=0.2))


async def test_reused_connection_dying_is_retried_only_for_idempotent(
    upstream: Upstream, transport: FastTransport
) -> None:
    await _get(transport, upstream.port, b"/ok")
    upstream.drop_next = True
    assert (await _get(transport, upstream.port, b"/ok"))[0] == 201  # replayed once
    await _get(transport, upstream.port, b"/ok")
    upstream.drop_next = True
    with pytest.raises(httpx.RemoteProtocolError):
        await _get(transport, upstream.port, b"/echo", b"POST", b"x")


async def test_body_delimited_by_connection_close(
    upstream: Upstream, transport: FastTransport
) -> None:
    status, _, data = await _get(transport, upstream.port, b"/eof")
    assert (status, data) == (200, b"until the end")
    assert (await _get(transport, upstream.port, b"/ok"))[2] == b"ok"


async def test_a_waiter_cancelled_as_the_connection_arrives_stops_and_returns_it(
    upstream: Upstream,
) -> None:
    """Python 3.11's ``wait_for`` would return the connection and lose the cancellation
    (the caller never stops); the pool must also not lose the connection either way."""
    t = FastTransport(max_connections=1)
    pool = t._pool("127.0.0.1", upstream.port, False)
    held = await pool.acquire(1.0, 5.0)
    waiting = asyncio.ensure_future(pool.acquire(1.0, 5.0))
    await asyncio.sleep(0.01)  # now queued behind the only connection
    pool.release(held)  # hands it to the waiter ...
    waiting.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.idle == [held]
    assert pool.total == 1
    again = await pool.acquire(1.0, 0.5)  # the slot is usable, not leaked
    assert again is held
    held.close()
    await t.aclose()
