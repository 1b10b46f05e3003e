"""The upstream transport against a misbehaving upstream (issue 16): bytes of one response
must never reach another client. Reproduces both desyncs of the review: a stray extra
response delivered to the next client, and an interim ``100 Continue`` taken as client A's
final response (so that client B got A's real headers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from svckit.http_transport import FastTransport
from tests.fixtures.raw_server import RawServer

A = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-for: a\r\n\r\nfor-a"
STRAY = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nx-for: nobody\r\n\r\nstray!!!!"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HINTS = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"


class Misbehaving(RawServer):
    """An upstream whose answer is chosen by the request path; it keeps connections open."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                await self._answer(target, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _answer(target: bytes, writer: asyncio.StreamWriter) -> None:
        pause = 0.05
        if target == b"/stray-later":  # the stray comes while the connection is idle
            writer.write(A)
            await writer.drain()
            await asyncio.sleep(pause)
            writer.write(STRAY)
        elif target == b"/stray-same":  # in the same read as the answer
            writer.write(A + STRAY)
        elif target == b"/continue":  # interim, then the final answer in a later read
            writer.write(CONTINUE)
            await writer.drain()
            await asyncio.sleep(pause)
            writer.write(A)
        elif target == b"/continue-same":
            writer.write(CONTINUE + HINTS + A)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-for: b\r\n\r\nfor-b")
        await writer.drain()


@pytest.fixture
async def upstream() -> AsyncIterator[Misbehaving]:
    server = Misbehaving()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[FastTransport]:
    t = FastTransport(max_connections=1, connect_timeout_s=1.0)
    yield t
    await t.aclose()


async def _get(
    t: FastTransport, port: int, target: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    r = await t.request_raw(
        b"GET", "127.0.0.1", port, target, [], None,
        host_header=b"up", connect_timeout=1.0, read_timeout=2.0, pool_timeout=2.0,
    )  # fmt: skip
    body = b"".join([c async for c in r])
    await r.aclose()
    return r.status, r.headers, body


async def _b_gets_its_own(t: FastTransport, port: int) -> None:
    status, headers, body = await _get(t, port, b"/b")
    assert (status, body) == (200, b"for-b")
    assert headers == [(b"content-length", b"5"), (b"x-for", b"b")]


@pytest.mark.parametrize("target", [b"/stray-later", b"/stray-same"])
async def test_a_stray_response_never_reaches_the_next_client(
    upstream: Misbehaving, transport: FastTransport, target: bytes
) -> None:
    status, headers, body = await _get(transport, upstream.port, target)
    assert (status, body) == (200, b"for-a")
    assert (b"x-for", b"a") in headers
    await asyncio.sleep(0.2)  # the stray arrives
    await _b_gets_its_own(transport, upstream.port)
    assert upstream.connections == 2  # the tainted connection was not reused


@pytest.mark.parametrize("target", [b"/continue", b"/continue-same"])
async def test_interim_responses_are_skipped(
    upstream: Misbehaving, transport: FastTransport, target: bytes
) -> None:
    status, headers, body = await _get(transport, upstream.port, target)
    assert (status, body) == (200, b"for-a")
    assert headers == [(b"content-length", b"5"), (b"x-for", b"a")]
    await _b_gets_its_own(transport, upstream.port)
    assert upstream.connections == 1  # a clean exchange: the connection is reused


async def test_many_clients_in_turn_each_get_their_own_answer(
    upstream: Misbehaving, transport: FastTransport
) -> None:
    """A and B alternate on a pool of one connection, each A answered with a stray."""
    for _ in range(5):
        _, _, body = await _get(transport, upstream.port, b"/stray-later")
        assert body == b"for-a"
        await asyncio.sleep(0.1)
        await _b_gets_its_own(transport, upstream.port)


async def test_an_upstream_that_does_not_take_the_body_is_a_write_timeout() -> None:
    """``upstream_write_timeout_s`` reaches the transport: a body the upstream never reads
    fails in that time, instead of waiting for the read timeout."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_read(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = FastTransport(max_connections=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(httpx.WriteTimeout):
            await t.request_raw(
                b"POST", "127.0.0.1", port, b"/", [], b"x" * (64 * 1024 * 1024),
                host_header=b"up", connect_timeout=1.0, read_timeout=30.0, write_timeout=0.3,
            )  # fmt: skip
        assert loop.time() - started < 5
    finally:
        await t.aclose()
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()
