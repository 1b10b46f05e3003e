"""The gateway's upstream transport (and the on-sale simulator's client): a small
keep-alive HTTP/1.1 client on asyncio protocols and ``httptools`` (the parser uvicorn uses),
behind httpx's transport API.

Why our own: measured on this machine (BENCHMARKS.md, ``bench/gateway_proxy.py``), stock
httpcore costs several times the upstream's own CPU per proxied request, and even building
an ``httpx.URL``/``httpx.Request`` per request costs ~100 µs. So:

- ``FastTransport.handle_async_request`` serves ``httpx.AsyncClient`` users (readiness checks,
  the queue's api_server client) like any httpx transport;
- ``FastTransport.request_raw`` is the proxy's hot path: bytes in, bytes out, no httpx
  objects. Everything above it (header hygiene, retries, circuit breaker, error mapping) is
  shared with the httpx path that the respx-based tests exercise; ``tests/svckit/
  test_http_transport.py`` tests this module against a real socket server.

Errors are raised as httpx exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
``WriteTimeout``, ``RemoteProtocolError``, ``ReadError``, ``PoolTimeout``) so callers map one
family only.

A connection carries one exchange at a time, and its framing is trusted only while the
upstream answers exactly what was asked (issue 16): bytes that arrive while it is idle, or
after a response is complete, close it (they would be read as the next client's response);
interim ``1xx`` responses are skipped; a connection goes back to the pool only when its
response was read to the end with nothing after it.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

_HIGH_WATER = 256 * 1024  # pause reading the upstream when this much body is unconsumed
_LOW_WATER = 64 * 1024
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


class _Unexpected(Exception):
    """Raised in a parser callback: the upstream sent a message nobody asked for."""


class _Conn(asyncio.Protocol):
    """One upstream connection; parses responses with httptools, one at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.counted = True  # counts against the pool's max_connections
        self.reused = False
        self.idle_since = 0.0
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.head_waiter: asyncio.Future[None] | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.body_waiter: asyncio.Future[None] | None = None
        self.done = False
        self.got_bytes = False
        self.error: Exception | None = None
        self.reading_paused = False
        self.head_only = False
        self.framed = False  # Content-Length or Transfer-Encoding seen
        self.begun = False  # a response message has started
        self.interim = False  # the message being parsed is a 1xx

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.head_waiter is None or self.done:
            # Nobody asked (idle, or the response is complete): whatever this is, the
            # connection can no longer tell where the next response starts.
            self.keep_alive = False
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
            self._fail(httpx.RemoteProtocolError(f"bad upstream response: {e!r}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if (
            not self.done
            and exc is None
            and not self.framed
            and self.head_waiter is not None
            and self.head_waiter.done()
        ):
            # A body delimited by the end of the connection (no length, not chunked).
            self.done = True
            self.keep_alive = False
            self._wake()
        if not self.done:
            if self.head_waiter is None or not self.head_waiter.done():
                err: Exception = httpx.RemoteProtocolError(
                    "upstream closed the connection without a response"
                )
            else:
                err = httpx.ReadError("upstream closed the connection mid-response")
            self._fail(err)
        self.pool.discard(self)
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(httpx.WriteError("upstream connection lost"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    async def drain(self, timeout: float | None) -> None:
        """Wait until the socket buffer accepts more (request body back-pressure), at most
        ``timeout`` (then ``WriteTimeout``)."""
        if self.closed:
            raise httpx.WriteError("upstream connection lost")
        if self._write_paused:
            self._drain_waiter = self.loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._drain_waiter
            except TimeoutError as e:
                raise httpx.WriteTimeout("upstream did not take the request in time") from e

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.begun:
            # A second response in one read: one request, one response.
            raise _Unexpected("a response nobody asked for")
        self.begun = True

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:  # the proxy never asks for an upgrade (Upgrade is hop-by-hop)
                raise _Unexpected("an upgrade nobody asked for")
            # Interim (100 Continue, 103 Early Hints): the final response follows.
            self.interim = True
            self.headers = []
            self.framed = False
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_waiter is not None and not self.head_waiter.done():
            self.head_waiter.set_result(None)
        if self.head_only:
            # httptools cannot be told the request was HEAD: it would wait for the body
            # that Content-Length announces. The response is complete; the connection is
            # not reused.
            self.done = True
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = self.begun = False
            return
        self.done = True
        self._wake()

    # helpers
    def _wake(self) -> None:
        w = self.body_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, err: Exception) -> None:
        if self.error is None:
            self.error = err
        for w in (self.head_waiter, self.body_waiter):
            if w is not None and not w.done():
                w.set_exception(err)

    def close(self) -> None:
        """Close the socket (the pool forgets it in ``connection_lost``)."""
        for w in (self.head_waiter, self.body_waiter):
            if w is not None and w.done() and not w.cancelled():
                w.exception()  # mark retrieved: the error was reported another way
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self.pool.discard(self)

    async def wait(self, waiter: asyncio.Future[None], timeout: float | None) -> None:
        """Await ``waiter``; past ``timeout`` fail it with ReadTimeout (one timer, no task)."""
        if timeout is None:
            await waiter
            return
        handle = self.loop.call_later(timeout, self._on_timeout, waiter)
        try:
            await waiter
        finally:
            handle.cancel()

    def _on_timeout(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            err = httpx.ReadTimeout("upstream did not answer in time")
            self.error = err
            waiter.set_exception(err)
            self.close()


class RawResponse:
    """A streamed upstream response: ``status``, lower-cased raw ``headers``, body chunks."""

    __slots__ = ("_conn", "_read_timeout", "_released", "headers", "status")

    def __init__(self, conn: _Conn, read_timeout: float | None) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._released = False
        self.status = conn.status
        self.headers = conn.headers

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        chunks = conn.chunks
        while True:
            if chunks:
                chunk = chunks.popleft()
                conn.buffered -= len(chunk)
                if conn.reading_paused and conn.buffered < _LOW_WATER and conn.transport:
                    conn.reading_paused = False
                    conn.transport.resume_reading()
                yield chunk
                continue
            if conn.done:
                return
            if conn.error is not None:
                raise conn.error
            conn.body_waiter = conn.loop.create_future()
            await conn.wait(conn.body_waiter, self._read_timeout)

    async def aclose(self) -> None:
        """Give the connection back to the pool if the body was read to the end, else close
        it (unread bytes would corrupt the next response)."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.done and conn.keep_alive and conn.error is None and not conn.closed:
            conn.pool.release(conn)
        else:
            conn.close()


class _Pool:
    """Keep-alive connections to one (host, port); LIFO so hot connections stay hot."""

    def __init__(
        self,
        host: str,
        port: int,
        max_connections: int,
        keepalive_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self.idle: list[_Conn] = []
        self.total = 0
        self.waiters: collections.deque[asyncio.Future[_Conn | None]] = collections.deque()

    async def acquire(self, connect_timeout: float | None, pool_timeout: float | None) -> _Conn:
        idle = self.idle
        while True:
            while idle:
                conn = idle.pop()
                transport = conn.transport
                if (
                    conn.closed
                    or transport is None
                    or transport.is_closing()
                    or time.monotonic() - conn.idle_since > self.keepalive_s
                ):
                    conn.close()
                    continue
                conn.reused = True
                return conn
            if self.total < self.max_connections:
                self.total += 1
                return await self._connect(connect_timeout)
            waiter: asyncio.Future[_Conn | None] = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                async with asyncio.timeout(pool_timeout):
                    got = await waiter
            except BaseException as e:
                # Timed out or cancelled just as a connection was handed over: give it back
                # rather than leak the pool slot.
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed is not None:
                        self.release(handed)
                if isinstance(e, TimeoutError):
                    raise httpx.PoolTimeout("no free upstream connection in time") from e
                raise
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
            if got is not None and not got.closed:  # it may have died since it was handed over
                got.reused = True
                return got

    async def _connect(self, timeout: float | None) -> _Conn:
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation
            # that arrives as the connection completes, and the caller then never stops.
            async with asyncio.timeout(timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Conn(self),
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context else None,
                )
        except TimeoutError as e:
            self._slot_freed()
            raise httpx.ConnectTimeout(f"connect to {self.host}:{self.port} timed out") from e
        except OSError as e:
            self._slot_freed()
            raise httpx.ConnectError(f"connect to {self.host}:{self.port}: {e}") from e
        except BaseException:
            self._slot_freed()
            raise
        return conn

    def release(self, conn: _Conn) -> None:
        conn._reset()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def discard(self, conn: _Conn) -> None:
        if conn.counted:
            conn.counted = False
            self._slot_freed()

    def _slot_freed(self) -> None:
        self.total -= 1
        # Wake one waiter: it loops in acquire() and connects anew in the freed slot.
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class FastTransport(httpx.AsyncBaseTransport):
    """Pooled keep-alive HTTP/1.1 to the gateway's backends (``http``, or ``https`` with the
    system's default certificate checks)."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        connect_timeout_s: float = 1.0,
        keepalive_s: float = 4.0,
    ) -> None:
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        # Below uvicorn's default keep-alive (5 s) so we drop a connection before the
        # server does; a request on a connection the server is closing would fail.
        self.keepalive_s = keepalive_s
        self._pools: dict[tuple[str, int, bool], _Pool] = {}
        self._ssl_context: ssl.SSLContext | None = None

    def _pool(self, host: str, port: int, tls: bool) -> _Pool:
        pool = self._pools.get((host, port, tls))
        if pool is None:
            if tls and self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            ctx = self._ssl_context if tls else None
            pool = _Pool(host, port, self.max_connections, self.keepalive_s, ctx)
            self._pools[(host, port, tls)] = pool
        return pool

    async def request_raw(
        self,
        method: bytes,
        host: str,
        port: int,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] | None,
        *,
        host_header: bytes,
        tls: bool = False,
        connect_timeout: float | None,
        read_timeout: float | None,
        write_timeout: float | None = None,
        pool_timeout: float | None = None,
    ) -> RawResponse:
        """Send one request and return once the response head arrived (body streamed).
        A kept-alive connection found dead before any response byte is replaced once for
        idempotent requests with a replayable body."""
        pool = self._pool(host, port, tls)
        lines = [method, b" ", target, b" HTTP/1.1\r\nhost: ", host_header, b"\r\n"]
        has_length = False
        for name, value in headers:
            if name == b"content-length":
                has_length = True
            lines += (name, b": ", value, b"\r\n")
        streamed = body is not None and not isinstance(body, bytes)
        if streamed and not has_length:
            lines.append(b"transfer-encoding: chunked\r\n")
        elif isinstance(body, bytes) and not has_length:
            lines += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        replayable = not streamed and method in _IDEMPOTENT
        for attempt in (0, 1):
            conn = await pool.acquire(connect_timeout, pool_timeout)
            conn.head_only = method == b"HEAD"
            conn.head_waiter = conn.loop.create_future()
            transport = conn.transport
            assert transport is not None
            try:
                if streamed:
                    transport.write(head)
                    await self._write_stream(
                        conn,
                        body,  # type: ignore[arg-type]
                        chunked=not has_length,
                        timeout=write_timeout,
                    )
                else:
                    transport.write(head + body if body else head)  # type: ignore[operator]
                    if conn._write_paused:
                        await conn.drain(write_timeout)
                await conn.wait(conn.head_waiter, read_timeout)
            except httpx.RemoteProtocolError:
                retry = conn.reused and not conn.got_bytes and replayable and attempt == 0
                conn.close()
                if retry:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return RawResponse(conn, read_timeout)
        raise AssertionError("unreachable")

    @staticmethod
    async def _write_stream(
        conn: _Conn, body: AsyncIterator[bytes], *, chunked: bool, timeout: float | None
    ) -> None:
        transport = conn.transport
        assert transport is not None
        async for chunk in body:
            if not chunk:
                continue
            if chunked:
                transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            await conn.drain(timeout)
        if chunked:
            transport.write(b"0\r\n\r\n")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The httpx transport API (used by ``httpx.AsyncClient`` callers)."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        try:
            body: bytes | AsyncIterator[bytes] | None = request.content or None
        except httpx.RequestNotRead:
            body = request.stream.__aiter__()  # type: ignore[union-attr]
        headers = [
            (n.lower(), v)
            for n, v in request.headers.raw
            if n.lower() not in (b"host", b"transfer-encoding")
        ]
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        raw = await self.request_raw(
            request.method.encode(),
            url.host,
            port,
            url.raw_path,
            headers,
            body,
            host_header=url.netloc,
            tls=tls,
            connect_timeout=timeout.get("connect", self.connect_timeout_s),
            read_timeout=timeout.get("read"),
            write_timeout=timeout.get("write"),
            pool_timeout=timeout.get("pool"),
        )
        return httpx.Response(
            raw.status,
            headers=raw.headers,
            stream=_HttpxStream(raw),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


class _HttpxStream(httpx.AsyncByteStream):
    def __init__(self, raw: RawResponse) -> None:
        self._raw = raw

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._raw:
            yield chunk

    async def aclose(self) -> None:
        await self._raw.aclose()
