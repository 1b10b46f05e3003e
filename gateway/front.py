"""The gateway's front layer: one pure-ASGI middleware in front of the FastAPI app.

Every request passes here first: request id, CORS, path safety, route-table lookup, body
limit, identity, rate limiting, admission, then either the streaming proxy (proxied routes
never touch FastAPI routing) or the inner FastAPI app (``/api/auth``, ``/api/queue``, ops,
OpenAPI). One access-log line and the metrics are written here for all of them.

Why pure ASGI and not FastAPI routes/middleware: the proxy is the hottest code of the system
at on-sale time, and Starlette routing, ``BaseHTTPMiddleware`` and per-request object churn
cost more CPU than the proxying itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import orjson
from starlette.datastructures import State

from gateway.cache import CachedResponse, MicroCache
from gateway.config import Settings
from gateway.identity.tokens import VerifiedTokens
from gateway.metrics import GatewayMetrics
from gateway.proxy import (
    _REQUEST_DROP,
    _RESPONSE_DROP,
    BodyTooLarge,
    ClientGone,
    Upstream,
    UpstreamFailure,
    connection_named,
    is_identity_header,
    read_body,
    send_upstream,
)
from gateway.ratelimit_api import ClientAddressResolver, RateLimiter
from gateway.routes import Match, PathRejected, RouteTable, check_path
from shared.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type
from shared.tokens import AccessClaims, InvalidToken, verify_admission_token
from svckit.errors import AppError
from svckit.http_server import REQUEST_TIMED_OUT
from svckit.middleware import ASGIApp, Message, Receive, Scope, Send, sane_request_id

access_log = logging.getLogger("boxoffice.access")
log = logging.getLogger("boxoffice.gateway")

_CT_PROBLEM = (b"content-type", PROBLEM_CONTENT_TYPE.encode())
_BEARER_CHALLENGE = b'Bearer realm="boxoffice"'
_CORS_ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_ALLOW_HEADERS = (
    b"authorization, content-type, idempotency-key, x-admission-token, x-request-id"
)
_CORS_EXPOSE = (
    b"x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, location"
)
# Responses up to this size (by Content-Length) are read whole before being sent on.
_SMALL_RESPONSE = 64 * 1024


class Problem(Exception):
    """A problem response decided by the front layer."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        slug: str | None,
        headers: list[tuple[bytes, bytes]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug
        self.headers = headers or []
        self.extra = extra


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Content Too Large",
        f"The request body exceeds {limit} bytes.",
        "payload-too-large",
        [(b"connection", b"close")],
    )


def _upstream_problem(f: UpstreamFailure, upstream: str) -> Problem:
    hdrs = [(b"retry-after", str(f.retry_after).encode())] if f.retry_after else []
    return Problem(
        f.status,
        {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[f.status],
        f.detail,
        f"upstream-{f.kind.replace('_', '-')}",
        hdrs,
        upstream=upstream,
    )


def _duplicate(name: str) -> Problem:
    # Two credentials of one kind: the gateway and a backend could each believe another.
    return Problem(400, "Bad Request", f"more than one {name} header", "duplicate-header")


def _unauthorized(detail: str, token_given: bool) -> Problem:
    challenge = _BEARER_CHALLENGE + (b', error="invalid_token"' if token_given else b"")
    return Problem(401, "Unauthorized", detail, "unauthorized", [(b"www-authenticate", challenge)])


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A gateway-owned route this layer answers itself, without FastAPI: ``path`` matches
    the raw path and captures the session id; ``handler`` returns the JSON body of a 200,
    raises an ``AppError`` for a problem, or returns None to let the FastAPI route answer."""

    method: str
    path: re.Pattern[bytes]
    handler: Callable[[State, int, AccessClaims], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class FastCreate:
    """A gateway-owned ``POST`` of a small JSON body that this layer answers itself, without
    FastAPI: ``path`` is the exact raw path; ``handler`` gets the body and returns the JSON
    body of a 201, or None to let the FastAPI route answer (it then reads the same body)."""

    path: bytes
    handler: Callable[[State, bytes], bytes | None]


# Bodies the fast path reads itself; anything larger goes to the FastAPI route.
_FAST_BODY_MAX = 4096


def _is_json(content_type: bytes) -> bool:
    """``application/json``, whatever its case and parameters (FastAPI reads such a body as
    JSON too; ``json.loads`` finds the encoding itself)."""
    return (
        content_type == b"application/json"
        or content_type.split(b";", 1)[0].strip().lower() == b"application/json"
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an app, after the body was read here: the body first, then whatever
    the client sends (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _app_problem(e: AppError) -> Problem:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in e.headers.items()]
    return Problem(e.status, e.title, e.detail, e.slug, headers, **e.extra)


class GatewayFront:
    """The pure-ASGI front layer (installed outermost by ``create_app``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        state: State,
        metrics: GatewayMetrics,
        fast_routes: list[FastRoute] | None = None,
        fast_creates: list[FastCreate] | None = None,
    ) -> None:
        self.app = app
        self.fast_routes = fast_routes or []
        self.fast_creates = {f.path: f for f in fast_creates or []}
        self.settings = settings
        self.state = state  # app.state: upstreams, rate_limiter, client_address (lifespan)
        self.metrics = metrics
        self.table = RouteTable(settings.routes)
        self.secret = settings.secret_key
        self.limit = settings.max_body_bytes
        self.retries = settings.upstream_retries
        self.backoff_s = settings.upstream_retry_backoff_s
        origins = settings.cors_origins
        self.cors_any = "*" in origins
        self.cors_origins = frozenset(o.encode() for o in origins if o != "*")
        self.tokens: VerifiedTokens = state.access_tokens

    # --- identity -------------------------------------------------------------------------

    def _admission(self, match: Match, token: bytes | None, user: AccessClaims) -> None:
        if not token:
            raise Problem(403, "Forbidden", "X-Admission-Token is required", "admission-required")
        try:
            raw = token.decode("ascii")
            session_id = match.session_id
            if session_id is None:
                # POST /api/ticketing/reservations: the session comes from the hold, which
                # ticket_server checks; here signature, expiry and user are what count.
                unverified = jwt.decode(raw, options={"verify_signature": False})
                sid = unverified.get("sid")
                if not isinstance(sid, int):
                    raise InvalidToken("no session in admission token")
                session_id = sid
            verify_admission_token(
                raw, secret=self.secret, user_id=user.user_id, session_id=session_id
            )
        except (InvalidToken, UnicodeDecodeError, jwt.PyJWTError) as e:
            raise Problem(
                403, "Forbidden", f"invalid admission token: {e}", "admission-invalid"
            ) from e

    # --- CORS -----------------------------------------------------------------------------

    def _cors_allowed(self, origin: bytes | None) -> bool:
        return origin is not None and (self.cors_any or origin in self.cors_origins)

    def _cors_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", _CORS_EXPOSE),
            (b"vary", b"Origin"),
        ]

    async def _preflight(self, send: Send, origin: bytes, rid: str, req_headers: bytes) -> int:
        if not self._cors_allowed(origin):
            await self._send_problem(
                send,
                Problem(403, "Forbidden", "origin not allowed", "cors-origin"),
                rid,
                [],
            )
            return 403
        headers = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", _CORS_ALLOW_METHODS),
            (b"access-control-allow-headers", req_headers or _CORS_ALLOW_HEADERS),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
            (b"x-request-id", rid.encode()),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return 204

    # --- responses ------------------------------------------------------------------------

    @staticmethod
    async def _send_problem(
        send: Send, problem: Problem, rid: str, extra_headers: list[tuple[bytes, bytes]]
    ) -> None:
        body = orjson.dumps(
            problem_body(
                status=problem.status,
                title=problem.title,
                detail=problem.detail,
                type_=problem_type(problem.slug) if problem.slug else None,
                request_id=rid,
                **problem.extra,
            )
        )
        headers = [
            _CT_PROBLEM,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
            *problem.headers,
            *extra_headers,
        ]
        await send({"type": "http.response.start", "status": problem.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _send_json(
        send: Send,
        body: bytes,
        rid: str,
        extra_headers: list[tuple[bytes, bytes]],
        status: int = 200,
    ) -> None:
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"x-request-id", rid.encode()),
            *extra_headers,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # --- the pipeline ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        raw_rid = content_length = content_type = authorization = origin = admission = None
        acr_method = acr_headers = None
        chunked = False
        duplicated: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                raw_rid = value
            elif name == b"content-length":
                content_length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"authorization":
                if authorization is not None:
                    duplicated = "Authorization"
                authorization = value
            elif name == b"origin":
                origin = value
            elif name == b"x-admission-token":
                if admission is not None:
                    duplicated = "X-Admission-Token"
                admission = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"access-control-request-method":
                acr_method = value
            elif name == b"access-control-request-headers":
                acr_headers = value
        rid = sane_request_id(raw_rid)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = rid
        path: str = scope["path"]
        group = "ops"
        status = 500
        upstream_name = ""
        extra: list[tuple[bytes, bytes]] = []
        if origin is not None and self._cors_allowed(origin):
            extra.extend(self._cors_headers(origin))
        try:
            if method == "OPTIONS" and origin is not None and acr_method is not None:
                group = "preflight"
                status = await self._preflight(send, origin, rid, acr_headers or b"")
                return
            if not path.startswith("/api/"):
                status = await self._local(scope, receive, send, rid, extra, content_length)
                return

            raw_path: bytes = scope.get("raw_path") or path.encode()
            if b"?" in raw_path:  # some test transports leave the query in raw_path
                raw_path = raw_path.split(b"?", 1)[0]
            group = "unmatched"
            if duplicated is not None:
                raise _duplicate(duplicated)
            try:
                check_path(raw_path)
            except PathRejected as e:
                raise Problem(400, "Bad Request", str(e), "bad-path") from e
            match = self.table.match(method, raw_path)
            if match is None:
                raise Problem(404, "Not Found", "no such route", "not-found")
            route = match.route
            group = route.group

            if content_length is not None:
                try:
                    length = int(content_length)
                except ValueError as e:
                    raise Problem(400, "Bad Request", "bad Content-Length", "bad-request") from e
                if length > self.limit:
                    raise _too_large(self.limit)
            else:
                length = -1 if chunked else 0

            user: AccessClaims | None = None
            if authorization is not None:
                scheme, _, token = authorization.partition(b" ")
                try:
                    if scheme.lower() != b"bearer" or not token:
                        raise InvalidToken("not a Bearer token")
                    user = self.tokens.verify(token.strip().decode("ascii"))
                except (InvalidToken, UnicodeDecodeError) as e:
                    if route.auth:
                        raise _unauthorized(f"invalid access token: {e}", True) from e
            elif route.auth:
                raise _unauthorized("an access token is required", False)
            state["user"] = user

            limiter: RateLimiter | None = self.state.rate_limiter
            if limiter is not None:
                if user is not None:
                    subject = "user:" + user.user_id
                else:
                    resolver: ClientAddressResolver = self.state.client_address
                    subject = "ip:" + resolver(scope)
                try:
                    decision = await limiter.hit(group, subject)
                except Exception as e:  # the limiter should decide itself; never a 500
                    log.exception("rate limiter failed", extra={"request_id": rid})
                    raise Problem(
                        503,
                        "Service Unavailable",
                        "rate limiting is unavailable",
                        "unavailable",
                        [(b"retry-after", b"1")],
                    ) from e
                extra.extend(decision.headers)
                if not decision.allowed:
                    # gateway/ratelimit: status 503 = Redis unavailable and the policy fails
                    # closed (LimitDecision.status); otherwise over the limit → 429.
                    if getattr(decision, "status", 429) == 503:
                        raise Problem(
                            503,
                            "Service Unavailable",
                            "rate limiting is unavailable; retry shortly",
                            "unavailable",
                            [(b"retry-after", str(max(1, decision.retry_after)).encode())],
                        )
                    raise Problem(
                        429,
                        "Too Many Requests",
                        "rate limit exceeded",
                        "rate-limited",
                        [(b"retry-after", str(max(1, decision.retry_after)).encode())],
                    )

            if route.admission is not None:
                assert user is not None  # admission routes require auth
                self._admission(match, admission, user)

            if match.is_local:
                create = self.fast_creates.get(raw_path) if method == "POST" else None
                if (
                    create is not None
                    and 0 < length <= _FAST_BODY_MAX
                    and content_type is not None
                    and _is_json(content_type)
                ):
                    request_body = await self._read(receive, state)
                    answer = create.handler(self.state, request_body)
                    if answer is not None:
                        status = 201
                        await self._send_json(send, answer, rid, extra, 201)
                        return
                    receive = _replay(request_body, receive)
                if user is not None:
                    for fast in self.fast_routes:
                        found = fast.path.match(raw_path) if fast.method == method else None
                        if found is None:
                            continue
                        try:
                            body = await fast.handler(self.state, int(found[1]), user)
                        except AppError as e:
                            raise _app_problem(e) from e
                        if body is not None:
                            status = 200
                            await self._send_json(send, body, rid, extra)
                            return
                        break
                status = await self._local(scope, receive, send, rid, extra, content_length)
                return
            upstream_name = route.upstream
            status = await self._proxy(scope, receive, send, rid, extra, match, method, length)
        except Problem as p:
            status = p.status
            await self._send_problem(send, p, rid, extra)
        except Exception:
            # Proxied requests never pass Starlette's error middleware: this is their last
            # line. A problem+json 500 if nothing was sent yet; the bug is logged.
            status = 500
            log.exception("unhandled error in the gateway", extra={"request_id": rid})
            with contextlib.suppress(Exception):
                await self._send_problem(
                    send,
                    Problem(
                        500,
                        "Internal Server Error",
                        "An unexpected error occurred; it has been logged.",
                        "internal",
                    ),
                    rid,
                    extra,
                )
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(group, method, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d %.1fms",
                    method,
                    path,
                    status,
                    elapsed * 1000,
                    extra={
                        "request_id": rid,
                        "service": "gateway",
                        "route": group,
                        "upstream": upstream_name,
                    },
                )

    async def _local(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
        extra: list[tuple[bytes, bytes]],
        content_length: bytes | None,
    ) -> int:
        """Hand the request to the inner FastAPI app, adding our headers to its response."""
        status_box = [500]
        added = [(b"x-request-id", rid.encode()), *extra]
        limit = self.limit
        if content_length is not None:
            try:
                too_big = int(content_length) > limit
            except ValueError:
                too_big = True
            if too_big:
                raise _too_large(limit)
        seen = 0
        started = False
        rejected = False

        async def limited_receive() -> Message:
            # Over the limit: answer 413 ourselves and tell the app the client left, so
            # it stops reading; whatever it still sends is dropped.
            nonlocal seen, rejected, started
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    rejected = True
                    if not started:
                        started = True
                        status_box[0] = 413
                        await self._send_problem(send, _too_large(limit), rid, extra)
                    return {"type": "http.disconnect"}
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
                status_box[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except Exception:
            if rejected or started:
                # Our 413, or FastAPI's server-error layer already answered 500 and logged.
                return status_box[0]
            raise
        return status_box[0]

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
        extra: list[tuple[bytes, bytes]],
        match: Match,
        method: str,
        length: int,
    ) -> int:
        """Forward to the route's upstream and stream the answer back."""
        upstreams: dict[str, Upstream] = self.state.upstreams
        upstream = upstreams[match.route.upstream]

        in_headers: list[tuple[bytes, bytes]] = scope["headers"]
        named = (
            connection_named(in_headers)
            if any(n == b"connection" for n, _ in in_headers)
            else frozenset()
        )
        headers: list[tuple[bytes, bytes]] = []
        host = b""
        xff = b""
        for name, value in in_headers:
            if name in _REQUEST_DROP or name in named or is_identity_header(name):
                if name == b"host":
                    host = value
                elif name == b"x-forwarded-for":
                    xff = value
                continue
            headers.append((name, value))
        client = scope.get("client")
        peer = client[0].encode() if client else b"unknown"
        headers.append((b"x-forwarded-for", xff + b", " + peer if xff else peer))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if host:
            headers.append((b"x-forwarded-host", host))
        headers.append((b"x-request-id", rid.encode()))

        # The whole body is read before an upstream connection is taken: a client that
        # trickles its body holds only its own socket (until the server's deadline).
        body = await self._read(receive, scope["state"]) if length else None

        query: bytes = scope.get("query_string", b"")
        target = match.upstream_path + b"?" + query if query else match.upstream_path

        cache: MicroCache | None = self.state.micro_cache
        if cache is not None and body is None:
            key = cache.key_for(match.route.group, method, target, in_headers)
            if key is not None:
                return await self._proxy_cached(
                    send, rid, extra, upstream, cache, match.route.group, key, method, target,
                    headers,
                )  # fmt: skip

        try:
            response = await send_upstream(
                upstream,
                method,
                target,
                headers,
                body,
                retries=self.retries,
                backoff_s=self.backoff_s,
                metrics=self.metrics,
            )
        except UpstreamFailure as f:
            raise _upstream_problem(f, upstream.name) from f
        except BodyTooLarge as e:
            raise _too_large(self.limit) from e
        except ClientGone as e:
            # Nobody is left to read it; the status is for the access log and metrics.
            raise Problem(400, "Bad Request", "client disconnected", "bad-request") from e

        status = response.status
        started = False
        try:
            raw = response.headers
            rnamed = connection_named(raw)
            out = []
            small = False
            for n, v in raw:
                if n in _RESPONSE_DROP or n in rnamed:
                    continue
                if n == b"content-length":
                    small = len(v) <= 5 and v.isdigit() and int(v) <= _SMALL_RESPONSE
                out.append((n, v))
            out.append((b"x-request-id", rid.encode()))
            out.extend(extra)
            if small:
                # A small body is read whole before the status line goes out: usually it
                # came in the same packet as the head, and if the upstream dies in between
                # the client still gets a clean 502 instead of a cut-off response.
                body_bytes = b"".join([chunk async for chunk in response])
                started = True
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": body_bytes})
                return status
            started = True
            await send({"type": "http.response.start", "status": status, "headers": out})
            # Hold back one chunk so the last one goes with more_body=False (one send fewer).
            pending: bytes | None = None
            async for chunk in response:
                if not chunk:
                    continue
                if pending is not None:
                    await send({"type": "http.response.body", "body": pending, "more_body": True})
                pending = chunk
            await send({"type": "http.response.body", "body": pending or b""})
        except OSError:
            # The client went away mid-response; nothing left to tell it.
            log.info("client disconnected mid-response", extra={"request_id": rid})
        except httpx.TransportError as e:
            upstream.breaker.failure()
            self.metrics.upstream_errors.labels(upstream.name, "reset").inc()
            log.warning(
                "upstream %s failed mid-response: %r", upstream.name, e, extra={"request_id": rid}
            )
            if not started:
                raise Problem(
                    502,
                    "Bad Gateway",
                    f"upstream '{upstream.name}' dropped the connection",
                    "upstream-reset",
                    upstream=upstream.name,
                ) from e
            # The status line already went out: the only honest signal left is to end the
            # connection without completing the body.
        finally:
            await response.aclose()
        return status

    async def _proxy_cached(
        self,
        send: Send,
        rid: str,
        extra: list[tuple[bytes, bytes]],
        upstream: Upstream,
        cache: MicroCache,
        group: str,
        key: bytes,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> int:
        """A cacheable GET: served from the micro-cache, by joining the one in-flight
        upstream request for its key, or by making it (the body is buffered for the cache;
        cacheable groups are small catalog pages)."""

        async def fetch() -> CachedResponse:
            response = await send_upstream(
                upstream,
                method,
                target,
                headers,
                None,
                retries=self.retries,
                backoff_s=self.backoff_s,
                metrics=self.metrics,
            )
            try:
                data = b"".join([chunk async for chunk in response])
            except httpx.TransportError as e:
                upstream.breaker.failure()
                self.metrics.upstream_errors.labels(upstream.name, "reset").inc()
                raise UpstreamFailure(
                    502, "reset", f"upstream '{upstream.name}' dropped the connection"
                ) from e
            finally:
                await response.aclose()
            return CachedResponse(response.status, response.headers, data)

        try:
            cached, how = await cache.fetch(group, key, fetch)
        except UpstreamFailure as f:
            raise _upstream_problem(f, upstream.name) from f
        rnamed = connection_named(cached.headers)
        out = [
            (n, v)
            for n, v in cached.headers
            if n not in _RESPONSE_DROP and n not in rnamed and n != b"content-length"
        ]
        out.append((b"content-length", str(len(cached.body)).encode()))
        out.append((b"x-cache", how.value.encode()))
        out.append((b"x-request-id", rid.encode()))
        out.extend(extra)
        await send({"type": "http.response.start", "status": cached.status, "headers": out})
        await send({"type": "http.response.body", "body": cached.body})
        return cached.status

    async def _read(self, receive: Receive, state: dict[str, Any]) -> bytes:
        try:
            return await read_body(receive, self.limit)
        except ClientGone as e:
            # Nobody reads this answer; its status is for the access log and metrics.
            if state.get(REQUEST_TIMED_OUT):
                raise Problem(408, "Request Timeout", "body too slow", "request-timeout") from e
            raise Problem(400, "Bad Request", "client disconnected", "bad-request") from e
        except BodyTooLarge as e:
            raise _too_large(self.limit) from e
