"""What every request needs, as pure-ASGI pieces: request id, body limit, access log and
metrics. ``RequestContextMiddleware`` puts them together for api_server and ticket_server;
the gateway's front stages (``gateway/front/``) use the same pieces. Pure ASGI (not
``BaseHTTPMiddleware``) because they sit on the hot path and must not buffer bodies."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from svckit.problems import AppError, BadRequest, PayloadTooLarge, send_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._-]{1,128}$")
access_log = logging.getLogger("boxoffice.access")


def sane_request_id(raw: bytes | None) -> str:
    """The client's request id if it is sane (1..128 of ``[A-Za-z0-9._-]``), else a new one."""
    if raw is not None and _REQUEST_ID_RE.match(raw):
        return raw.decode("ascii")
    # 128 random bits as 32 hex digits, like uuid4().hex, at a seventh of its cost (no
    # getrandom() call per request): an id for correlating logs, not a secret. The generator
    # is seeded from the OS per process and re-seeded in forked children.
    return f"{random.getrandbits(128):032x}"


def declared_length(content_length: bytes | None, limit: int) -> int | None:
    """The body size the client declares (None: no ``Content-Length``); a value that is not
    a number is a 400, one over ``limit`` a 413, before any of the body is read."""
    if content_length is None:
        return None
    # Digits only (RFC 9110 §8.6): ``int()`` would also take a sign, spaces and underscores.
    if not content_length.isdigit():
        raise BadRequest("bad Content-Length")
    length = int(content_length)
    if length > limit:
        raise PayloadTooLarge(limit)
    return length


class LimitedBody:
    """The body-limit wrapper around an app's ``receive`` and ``send``.

    Past ``limit`` bytes the client gets the 413 at once (unless a response has started)
    and the app is told the client left, so it stops reading; what it still sends is
    dropped. ``headers`` are added to the app's response; ``status`` is what was sent."""

    __slots__ = (
        "_receive",
        "_send",
        "headers",
        "limit",
        "rejected",
        "request_id",
        "seen",
        "started",
        "status",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        *,
        limit: int,
        request_id: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.request_id = request_id
        self.headers = headers
        self.seen = 0
        self.started = False
        self.rejected = False
        self.status = 500

    async def receive(self) -> Message:
        """The app's ``receive``."""
        if self.rejected:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.rejected = True
                if not self.started:
                    self.started = True
                    self.status = 413
                    await send_error(self._send, PayloadTooLarge(self.limit), self.request_id)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        """The app's ``send``."""
        if self.rejected:
            return
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), *self.headers]
        await self._send(message)


class RequestMetrics(Protocol):
    """What :func:`observe` counts into (``svckit.metrics.ServiceMetrics``)."""

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""


def observe(
    metrics: RequestMetrics,
    service: str,
    method: str,
    path: str,
    route: str,
    status: int,
    started: float,
    request_id: str,
    upstream: str | None = None,
) -> None:
    """The metrics and the access-log line of one finished request (the gateway's name the
    ``upstream``, "" for what it answers itself). Positional: it runs on every request."""
    elapsed = time.perf_counter() - started
    metrics.observe_request(route, method, status, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        fields = {"request_id": request_id, "service": service, "route": route}
        if upstream is not None:
            fields["upstream"] = upstream
        access_log.info("%s %s %d %.1fms", method, path, status, elapsed * 1000, extra=fields)


class RequestContextMiddleware:
    """Request id in and out, 400/413 for a bad or too large body, an access-log line and
    metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        metrics: RequestMetrics,
        max_body_bytes: int = 1024 * 1024,
        route_label: Callable[[Scope], str] | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.route_label = route_label or _starlette_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        raw_rid = None
        content_length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                raw_rid = value
            elif name == b"content-length":
                content_length = value
        rid = sane_request_id(raw_rid)
        scope.setdefault("state", {})["request_id"] = rid
        body = LimitedBody(
            receive,
            send,
            limit=self.max_body_bytes,
            request_id=rid,
            headers=[(b"x-request-id", rid.encode())],
        )
        try:
            try:
                declared_length(content_length, self.max_body_bytes)
            except AppError as e:
                body.status = e.status
                await send_error(send, e, rid)
                return
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.rejected:
                raise  # the server-error layer outside answers 500
        finally:
            observe(
                self.metrics,
                self.service,
                scope["method"],
                scope["path"],
                self.route_label(scope),
                body.status,
                started,
                rid,
            )


def _starlette_route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
