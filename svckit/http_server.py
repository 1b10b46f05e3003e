"""uvicorn's httptools protocol, sending each response in one write, and guarding the edge.

uvicorn writes a response's head as soon as the app sends ``http.response.start``, and the
body on ``http.response.body``: two ``send()`` calls, two TCP segments, on every response.
Apps send both in one step of their task, so the writes made during one step of the event
loop are joined and sent together right after it. Where the gateway answers from memory (a
micro-cached page, queue join and status), socket writes were a quarter of its CPU, and this
took its CPU per cached answer from 82–88 to 65–67 µs (BENCHMARKS.md).

The protocol is also every service's first line against hostile clients (issue 16), because
only it sees bytes before an app does:

- the request line and headers are capped (``request_head_max_bytes``): past the cap the
  client gets 431 and the connection closes, before the parser has buffered more than one
  read beyond it, and nothing reaches the app;
- a head must arrive within ``request_head_timeout_s`` (the first one counted from the
  connection), and a body within
  ``request_body_timeout_s`` with no gap over ``request_body_idle_timeout_s``; past them the
  client gets 408 and the connection closes (the app, if it was reading, sees a disconnect).
  The timers are armed only when a head or body spans several reads, so a request that
  arrives whole costs no timer at all;
- uvicorn's own 400 for bytes that are not HTTP is problem+json like every other error.

The limits come from the ``settings`` the app's lifespan yields (``CommonSettings``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shared.config import CommonSettings
from shared.problems import PROBLEM_CONTENT_TYPE
from svckit.middleware import sane_request_id
from svckit.problems import problem_json

# For ``uvicorn.run(http=...)`` and ``uvicorn --http``.
HTTP_PROTOCOL = "svckit.http_server:CoalescingHttpToolsProtocol"

# Set in a request's ``scope["state"]`` when its body missed a deadline: the app saw a
# disconnect, and may log the 408 the client was sent instead of "client gone".
REQUEST_TIMED_OUT = "svckit.request_timed_out"


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What a connection may cost before the app sees a request."""

    head_max_bytes: int
    head_timeout_s: float
    body_idle_timeout_s: float
    body_timeout_s: float

    @classmethod
    def of(cls, settings: object | None) -> EdgeLimits:
        """The limits of ``settings`` (any ``CommonSettings``), else the defaults."""
        s = settings if isinstance(settings, CommonSettings) else _default_settings()
        return cls(
            head_max_bytes=s.request_head_max_bytes,
            head_timeout_s=s.request_head_timeout_s,
            body_idle_timeout_s=s.request_body_idle_timeout_s,
            body_timeout_s=s.request_body_timeout_s,
        )


@functools.cache
def _default_settings() -> CommonSettings:
    # The defaults only (no environment): for apps served without a lifespan.
    return CommonSettings.model_construct()


def problem_response(
    status: int, title: str, detail: str, slug: str, request_id: str | None = None
) -> bytes:
    """A whole HTTP/1.1 problem+json response that closes the connection."""
    rid = request_id or sane_request_id(None)
    body = problem_json(status, title, detail, slug, rid)
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: ",
            PROBLEM_CONTENT_TYPE.encode(),
            b"\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nx-request-id: ",
            rid.encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
    )


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


class _Refused(Exception):
    """Raised from a parser callback to stop parsing: ``_refusal`` says what to answer."""


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` over a :class:`CoalescingTransport`, with the head
    cap and the head and body deadlines of :class:`EdgeLimits`."""

    _limits: EdgeLimits
    # Between on_message_begin and on_headers_complete / on_message_complete.
    _head_open = False
    _body_open = False
    _head_bytes = 0  # bytes of earlier reads that belong to the open head
    _chunk = 0  # size of the read being parsed
    _body_since = 0.0
    _body_seen_at = 0.0
    _timer: asyncio.TimerHandle | None = None
    _refusal: tuple[int, str, str, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport, then set up as uvicorn does."""
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        settings = self.app_state.get("settings") if isinstance(self.app_state, Mapping) else None
        self._limits = EdgeLimits.of(settings)
        # A connection that never sends a byte would be kept forever (uvicorn's keep-alive
        # timer starts only after a response): the first head has the head's deadline.
        self._arm(self._limits.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline, then as uvicorn does."""
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` (as uvicorn does), then enforce the head cap and the deadlines."""
        self._unset_keepalive_if_required()
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            refusal = self._refusal or (
                400,
                "Bad Request",
                "Invalid HTTP request received.",
                "bad-request",
            )
            self.logger.warning("%s", refusal[2])
            self._refuse(*refusal)
            return
        if self._head_open:
            # A head spans reads only when it is slow or big: both are watched.
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.head_max_bytes:
                self._refuse(*self._head_too_large())
                return
            if self._timer is None:
                self._arm(self._limits.head_timeout_s)
        elif self._body_open:
            self._body_seen_at = self.loop.time()
            if self._timer is None:
                self._body_since = self._body_seen_at
                limits = self._limits
                self._arm(min(limits.body_idle_timeout_s, limits.body_timeout_s))
        elif self._timer is not None:
            self._cancel_timer()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 for bytes that are not HTTP, as problem+json."""
        self._refuse(400, "Bad Request", msg, "bad-request")

    # Parser callbacks
    def on_message_begin(self) -> None:
        """A new request starts: its head is watched from here."""
        self._head_open = True
        self._head_bytes = 0
        self._cancel_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """Refuse a head over the cap (431), else start the request as uvicorn does."""
        limit = self._limits.head_max_bytes
        # The reads so far bound the head from above; count it exactly only when they
        # exceed the cap (a small head and its body may come in one big read).
        if self._head_bytes + self._chunk > limit and self._head_size() > limit:
            self._refusal = self._head_too_large()
            raise _Refused
        self._head_open = False
        self._body_open = True
        self._cancel_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The body is in: no deadline is left."""
        self._body_open = False
        self._cancel_timer()
        super().on_message_complete()

    # helpers
    def _head_size(self) -> int:
        return len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) + 16

    def _head_too_large(self) -> tuple[int, str, str, str]:
        return (
            431,
            "Request Header Fields Too Large",
            f"The request line and headers exceed {self._limits.head_max_bytes} bytes.",
            "headers-too-large",
        )

    def _arm(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._on_deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._head_open:
            self._refuse(
                408,
                "Request Timeout",
                f"The request head did not arrive within {self._limits.head_timeout_s} s.",
                "request-timeout",
            )
            return
        if not self._body_open:
            if self.cycle is None:  # not a byte since the connection was made
                self.transport.close()
            return
        limits = self._limits
        now = self.loop.time()
        if self.flow.read_paused:
            # The app is behind, not the client: its body waits in our buffer.
            self._body_seen_at = now
        due = min(
            self._body_since + limits.body_timeout_s,
            self._body_seen_at + limits.body_idle_timeout_s,
        )
        if now < due:
            self._arm(due - now)
            return
        self._refuse(
            408,
            "Request Timeout",
            "The request body did not arrive in time "
            f"(idle limit {limits.body_idle_timeout_s} s, total {limits.body_timeout_s} s).",
            "request-timeout",
        )

    def _refuse(self, status: int, title: str, detail: str, slug: str) -> None:
        """Answer ``status`` unless a response is under way, and close the connection; an
        app still reading this request's body sees a disconnect."""
        self._cancel_timer()
        current = self._body_open  # else the cycle, if any, is an earlier request's
        self._head_open = self._body_open = False
        cycle = self.cycle
        request_id: str | None = None
        if cycle is None:
            answer = True
        elif not current:  # a new head: answer it unless an earlier response is under way
            answer = cycle.response_complete
        else:  # this request's body: answer unless the app already did (or is doing so)
            answer = not cycle.response_started
            if answer:
                state = cycle.scope.get("state")
                if isinstance(state, dict):
                    request_id = state.get("request_id")
                    state[REQUEST_TIMED_OUT] = status == 408
                # No response of the app's may follow ours.
                cycle.disconnected = True
                cycle.message_event.set()
        if answer:
            self.transport.write(problem_response(status, title, detail, slug, request_id))
        self.transport.close()
