"""svckit.http_server at the edge (issue 16), through raw sockets: the head cap (431), head
and body deadlines (408), and problem+json for bytes that are not HTTP. Nothing refused here
may reach the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import pytest
import uvicorn

from boxoffice.ports import free_port
from shared.config import CommonSettings
from svckit.http_server import HTTP_PROTOCOL
from svckit.middleware import Message, Receive, Scope, Send


class Recorder:
    """An echo app that records every request it sees and every message it receives."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.requests: list[str] = []
        self.received: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["settings"] = self.settings  # as a service's lifespan
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.requests.append(scope["path"])
        if scope["path"] == "/early":  # answers without reading the body
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


Serve = Callable[..., AbstractAsyncContextManager[tuple[int, Recorder]]]


@pytest.fixture
def serve() -> Serve:
    """``async with serve(**settings) as (port, app)``: the recorder on our protocol."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[tuple[int, Recorder]]:
        recorder = Recorder(CommonSettings(**overrides))
        port = free_port()
        config = uvicorn.Config(
            recorder, host="127.0.0.1", port=port, http=HTTP_PROTOCOL, log_level="error"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            yield port, recorder
        finally:
            server.should_exit = True
            await task

    return run


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, Any]]:
    """The status line and problem body of a response after which the server closes."""
    data = await asyncio.wait_for(_until_closed(reader), 5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    assert b"x-request-id: " in head
    return head.split(b"\r\n", 1)[0], orjson.loads(body)


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """What arrives until the server closes (a reset after a refusal ends it too)."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionError:
        pass
    return data


async def _send_ignoring_reset(writer: asyncio.StreamWriter, data: bytes, step: int) -> None:
    """Write ``data`` in pieces of ``step``; the server may close before the end."""
    try:
        for i in range(0, len(data), step):
            writer.write(data[i : i + step])
            await writer.drain()
    except ConnectionError:
        pass


class TestHeadCap:
    @pytest.mark.parametrize("step", [1 << 30, 4096], ids=["one-write", "trickled"])
    async def test_a_head_over_the_cap_is_431_and_reaches_nobody(
        self, serve: Serve, step: int
    ) -> None:
        head = b"GET /x HTTP/1.1\r\nhost: t\r\n" + b"x-pad: " + b"a" * 40_000 + b"\r\n\r\n"
        async with serve(request_head_max_bytes=16384) as (port, app):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answer = asyncio.create_task(_answer(reader))
            await _send_ignoring_reset(writer, head, step)
            status, problem = await answer
            writer.close()
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
        assert problem["status"] == 431
        assert problem["type"].endswith("/headers-too-large")
        assert app.requests == []

    async def test_an_endless_header_is_cut_off_at_the_cap(self, serve: Serve) -> None:
        """64 MB of one header: the server answers and closes long before the end."""
        async with serve(request_head_max_bytes=16384) as (port, app):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answer = asyncio.create_task(_answer(reader))
            writer.write(b"GET /x HTTP/1.1\r\nhost: t\r\nx-flood: ")
            sent = 0
            try:
                while sent < 64 * 1024 * 1024:
                    writer.write(b"a" * 65536)
                    await asyncio.wait_for(writer.drain(), 5)
                    sent += 65536
            except ConnectionError:
                pass
            status, _ = await answer
            writer.close()
        assert status.startswith(b"HTTP/1.1 431")
        assert sent < 8 * 1024 * 1024
        assert app.requests == []

    async def test_a_small_head_and_a_big_body_in_one_write_are_served(self, serve: Serve) -> None:
        """The cap counts the head, not the body that came in the same read."""
        body = b"b" * 200_000
        request = (
            b"POST /echo HTTP/1.1\r\nhost: t\r\nx-pad: " + b"a" * 10_000 + b"\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        ) + body
        async with serve(request_head_max_bytes=16384) as (port, app):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            data = b""
            while not data.endswith(body):
                data += await asyncio.wait_for(reader.read(1 << 20), 5)
            writer.close()
        assert data.startswith(b"HTTP/1.1 200 OK")
        assert app.requests == ["/echo"]

    async def test_bytes_that_are_not_http_get_a_problem(self, serve: Serve) -> None:
        async with serve() as (port, app):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nbad header\x00: x\r\n\r\n")
            status, problem = await _answer(reader)
            writer.close()
        assert status == b"HTTP/1.1 400 Bad Request"
        assert problem["status"] == 400
        assert app.requests == []


class TestDeadlines:
    async def test_a_slow_head_is_408(self, serve: Serve) -> None:
        async with serve(request_head_timeout_s=0.3) as (port, app):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /x HTTP/1.1\r\nhost: t\r\n")
            status, problem = await _answer(reader)
            writer.close()
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert problem["type"].endswith("/request-timeout")
        assert app.requests == []

    async def test_a_connection_that_sends_nothing_is_closed(self, serve: Serve) -> None:
        loop = asyncio.get_running_loop()
        async with serve(request_head_timeout_s=0.3) as (port, app):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = loop.time()
            assert await asyncio.wait_for(_until_closed(reader), 5) == b""
            assert loop.time() - started < 2
            writer.close()
        assert app.requests == []

    async def test_a_kept_alive_connection_is_not_cut_by_the_first_deadline(
        self, serve: Serve
    ) -> None:
        async with serve(request_head_timeout_s=0.3) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(4):  # 0.6 s in all, each head whole
                writer.write(b"GET /a HTTP/1.1\r\nhost: t\r\n\r\n")
                data = await asyncio.wait_for(reader.readuntil(b"content-length: 0\r\n\r\n"), 5)
                assert data.startswith(b"HTTP/1.1 200 OK")
                await asyncio.sleep(0.15)
            writer.close()

    async def test_a_stalled_body_is_408_and_the_app_sees_a_disconnect(self, serve: Serve) -> None:
        async with serve(request_body_idle_timeout_s=0.3) as (port, app):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /a HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n"
            )
            status, _ = await _answer(reader)
            writer.close()
            await asyncio.sleep(0.05)
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert app.requests == ["/a"]
        assert app.received[-1] == {"type": "http.disconnect"}

    async def test_a_trickled_body_meets_the_total_deadline(self, serve: Serve) -> None:
        """One byte every 0.1 s is never idle for long, but the total deadline holds."""
        loop = asyncio.get_running_loop()
        async with serve(request_body_idle_timeout_s=0.5, request_body_timeout_s=1.0) as (
            port,
            _,
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = loop.time()
            writer.write(b"POST /a HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n")

            async def trickle() -> None:
                with contextlib.suppress(ConnectionError):
                    for _ in range(1000):
                        await asyncio.sleep(0.1)
                        writer.write(b"x")
                        await writer.drain()

            trickling = asyncio.create_task(trickle())
            status, _ = await _answer(reader)
            elapsed = loop.time() - started
            trickling.cancel()
            writer.close()
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert 0.9 < elapsed < 2.0

    async def test_a_body_at_a_steady_pace_within_the_deadlines_is_served(
        self, serve: Serve
    ) -> None:
        async with serve(request_body_idle_timeout_s=0.5, request_body_timeout_s=5.0) as (
            port,
            _,
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /a HTTP/1.1\r\nhost: t\r\ncontent-length: 8\r\n\r\n")
            for _ in range(8):
                await asyncio.sleep(0.1)
                writer.write(b"y")
            data = await asyncio.wait_for(reader.readuntil(b"yyyyyyyy"), 5)
            writer.close()
        assert data.startswith(b"HTTP/1.1 200 OK")


async def test_a_body_left_unsent_after_an_early_answer_only_closes(serve: Serve) -> None:
    """The app answered before reading the body (as a refused admin call may); the client
    then stalls: the connection closes at the deadline, with no second response."""
    async with serve(request_body_idle_timeout_s=0.3) as (port, app):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /early HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\n{")
        data = await asyncio.wait_for(_until_closed(reader), 5)
        writer.close()
    assert data.count(b"HTTP/1.1 ") == 1
    assert data.startswith(b"HTTP/1.1 204 ")
    assert app.requests == ["/early"]
