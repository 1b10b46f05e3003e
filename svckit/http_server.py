"""uvicorn's httptools protocol, sending each response in one write.

uvicorn writes a response's head as soon as the app sends ``http.response.start``, and the
body on ``http.response.body``: two ``send()`` calls, two TCP segments, on every response.
Apps send both in one step of their task, so the writes made during one step of the event
loop are joined and sent together right after it. Where the gateway answers from memory (a
micro-cached page, queue join and status), socket writes were a quarter of its CPU, and this
took its CPU per cached answer from 82–88 to 65–67 µs (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# For ``uvicorn.run(http=...)`` and ``uvicorn --http``.
HTTP_PROTOCOL = "svckit.http_server:CoalescingHttpToolsProtocol"


class CoalescingTransport:
    """A transport whose writes within one event-loop step go out as one ``write``."""

    __slots__ = ("_loop", "_pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; it is written when the current step of the loop is done."""
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        """Queue every chunk (as ``write``)."""
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Write what is queued, now."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self.transport.is_closing():
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Write what is queued, then close (a transport's close sends its buffer first)."""
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        """Write what is queued, then half-close."""
        self.flush()
        self.transport.write_eof()

    def get_write_buffer_size(self) -> int:
        """Bytes not sent yet: the transport's buffer and the queued writes."""
        return self.transport.get_write_buffer_size() + sum(len(p) for p in self._pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` over a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport, then set up as uvicorn does."""
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
