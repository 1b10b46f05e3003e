"""svckit.http_server: uvicorn's httptools protocol with one write per response. The client
gets the same bytes as from the stock protocol, streamed chunks are not held back, closing
sends what was queued first."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from boxoffice.ports import free_port
from svckit.http_server import HTTP_PROTOCOL, CoalescingTransport
from svckit.middleware import Receive, Scope, Send


class _Recorder(asyncio.Transport):
    """A transport that records what the socket would be asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def test_writes_of_one_loop_step_go_out_as_one() -> None:
    raw = _Recorder()
    t = CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    t.write(b"")
    t.writelines([b"he", bytearray(b"llo")])
    assert raw.writes == []
    assert t.get_write_buffer_size() == 7 + 19 + 5
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nhello"]
    t.write(b"next")
    await asyncio.sleep(0)
    assert raw.writes[1:] == [b"next"]
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)


async def test_close_and_eof_send_what_is_queued_first_and_later_writes_are_dropped() -> None:
    raw = _Recorder()
    t = CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(b"a")
    t.write_eof()
    t.write(b"b")
    t.close()
    assert raw.writes == [b"a", b"<eof>", b"b"]
    assert raw.closed
    t.write(b"after close")
    await asyncio.sleep(0)
    assert raw.writes == [b"a", b"<eof>", b"b"]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """By path: /small, /stream (two chunks 0.3 s apart), /echo (answers with the body)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await asyncio.sleep(0.3)
        await send({"type": "http.response.body", "body": b"second"})
        return
    body = b"small body"
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(params=["httptools", HTTP_PROTOCOL])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    """The app on the stock protocol and on ours: every test must pass on both."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=request.param, log_level="warning", lifespan="off"
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    yield port
    srv.should_exit = True
    await task


async def test_keep_alive_requests_get_whole_responses(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /small HTTP/1.1\r\nhost: t\r\n\r\n" * 3)
    data = b""
    while data.count(b"small body") < 3:
        data += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    one = (
        b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\ncontent-type: text/plain\r\n"
        b"content-length: 10\r\n\r\nsmall body"
    )
    assert re.sub(rb"date: [^\r]*\r\n", b"", data) == one * 3


async def test_connection_close_sends_the_whole_response_before_closing(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /small HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    writer.close()
    assert data.endswith(b"\r\n\r\nsmall body")
    assert b"connection: close" in data


async def test_streamed_chunks_are_not_held_back(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    data = b""
    while b"first" not in data:
        data += await asyncio.wait_for(reader.read(65536), 5)
    first_after = loop.time() - started
    while not data.endswith(b"0\r\n\r\n"):
        data += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert first_after < 0.2  # the second chunk comes 0.3 s later
    assert b"5\r\nfirst\r\n" in data
    assert b"6\r\nsecond\r\n0\r\n\r\n" in data


async def test_expect_100_continue_is_answered_before_the_body_is_sent(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(
        b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ping")
    data = b""
    while not data.endswith(b"ping"):
        data += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 OK")


async def test_a_response_leaves_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    real = CoalescingTransport.flush

    def counting(self: CoalescingTransport) -> None:
        writes.append(len(self._pending))
        real(self)

    monkeypatch.setattr(CoalescingTransport, "flush", counting)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=HTTP_PROTOCOL, log_level="warning", lifespan="off"
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /small HTTP/1.1\r\nhost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"small body"):
            data += await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
    finally:
        srv.should_exit = True
        await task
    assert writes[0] == 2  # head and body, joined into one socket write
