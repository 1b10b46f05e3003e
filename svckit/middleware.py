"""One pure-ASGI middleware for what every request needs: request id, body limit, access
log and metrics. Pure ASGI (not ``BaseHTTPMiddleware``) because it sits on the hot path and
must not buffer streamed bodies."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from shared.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type
from svckit.metrics import ServiceMetrics

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


def problem_json(status: int, title: str, detail: str, slug: str, request_id: str) -> bytes:
    """The problem+json body of a problem kind (``slug``)."""
    return orjson.dumps(
        problem_body(
            status=status,
            title=title,
            detail=detail,
            type_=problem_type(slug),
            request_id=request_id,
        )
    )


async def send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    slug: str,
    request_id: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Write a whole problem+json response straight to ASGI ``send``."""
    body = problem_json(status, title, detail, slug, request_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_too_large(send: Send, limit: int, request_id: str) -> None:
    await send_problem(
        send,
        413,
        "Content Too Large",
        f"The request body exceeds {limit} bytes.",
        "payload-too-large",
        request_id,
        [(b"connection", b"close")],
    )


class RequestContextMiddleware:
    """Request id in and out, 413 over the body limit, an access-log line and metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        metrics: ServiceMetrics,
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
        rid_header = (b"x-request-id", rid.encode())
        status_box = [500]

        limit = self.max_body_bytes
        if content_length is not None:
            try:
                too_big = int(content_length) > limit
            except ValueError:
                too_big = False
            if too_big:
                await _send_too_large(send, limit, rid)
                self._observe(scope, 413, started, rid)
                return

        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raising here would become the framework's 400; instead end the body
                    # early and replace whatever the app answers with a 413.
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        replaced = False

        async def send_wrapper(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if too_large:
                    replaced = True
                    status_box[0] = 413
                    await _send_too_large(send, limit, rid)
                    return
                status_box[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        finally:
            self._observe(scope, status_box[0], started, rid)

    def _observe(self, scope: Scope, status: int, started: float, rid: str) -> None:
        elapsed = time.perf_counter() - started
        route = self.route_label(scope)
        self.metrics.observe_request(route, scope["method"], status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                extra={"request_id": rid, "service": self.service, "route": route},
            )


def _starlette_route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
