"""Upstream clients and the streaming reverse proxy.

One pooled ``httpx.AsyncClient`` per upstream (its API is what tests and the queue use; respx
mocks it). The hot path hands an ``httpx.Request`` straight to the client's transport: the
client's auth/redirect/cookie machinery has nothing to do for a proxy and costs CPU per
request. Transport errors are translated here into 502/504 problems (``UpstreamFailure``), and the
per-upstream circuit breaker is fed. The front layer's proxy stage (``gateway/front/forward.py``)
uses these pieces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from gateway.circuit import CircuitBreaker
from gateway.config import Settings
from gateway.metrics import GatewayMetrics
from svckit.http_transport import FastTransport
from svckit.problems import AppError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("boxoffice.gateway.proxy")

# RFC 9110 §7.6.1 connection-specific fields (plus the de-facto ones), never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Request headers the gateway sets itself (or must not pass on): the client's Host becomes
# X-Forwarded-Host, the request id is the sanitized one, forwarding headers are rebuilt.
REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-real-ip",
    # Expectations are the gateway's business (uvicorn answers 100-continue to the client);
    # forwarded, they would make the upstream send an interim 100 response.
    b"expect",
}
# Identity claims nobody may make from outside (API.md: never believed by anyone).
IDENTITY_HEADERS = frozenset(
    {
        b"x-user-id",
        b"x-user",
        b"x-user-name",
        b"x-user-nickname",
        b"x-nickname",
        b"x-authenticated-user",
        b"x-authenticated-userid",
        b"x-auth-user",
        b"x-auth-user-id",
        b"x-remote-user",
        b"remote-user",
        b"x-forwarded-user",
        b"x-consumer-id",
        b"x-consumer-username",
        b"x-admission-claims",
    }
)
# uvicorn adds its own Date and Server; passing the upstream's on would duplicate them.
# The request id is the gateway's (the upstream echoes the forwarded one anyway).
RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class BodyTooLarge(Exception):
    """The client's streamed body went over the limit."""


class ClientGone(Exception):
    """The client disconnected while its body was being read."""


def connection_named(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop too)."""
    names: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            names.update(v.strip().lower() for v in value.split(b",") if v.strip())
    return frozenset(names)


def is_identity_header(name: bytes) -> bool:
    """A client-sent identity claim (dropped before proxying)."""
    return name in IDENTITY_HEADERS or name.startswith(b"x-user-")


@dataclass(slots=True)
class Upstream:
    """One backend: its client, transport (shared pool) and circuit breaker."""

    name: str
    base_url: httpx.URL
    client: httpx.AsyncClient
    transport: httpx.AsyncBaseTransport
    breaker: CircuitBreaker
    timeout: dict[str, float]
    scheme: bytes
    host: str
    port: int | None

    @property
    def port_or_default(self) -> int:
        """The port to connect to."""
        return self.port or (443 if self.scheme == b"https" else 80)

    @property
    def host_header(self) -> bytes:
        """The Host header value for this upstream."""
        return self.base_url.netloc

    def url(self, target: bytes) -> httpx.URL:
        """The upstream URL of an already-validated raw path (+ query)."""
        return httpx.URL(
            scheme=self.base_url.scheme,
            host=self.host,
            port=self.port,
            raw_path=target,
        )


def stock_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """httpx's own httpcore transport (what plain ``respx.mock`` intercepts)."""
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_keepalive,
        ),
        retries=0,
    )


def fast_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The production transport (svckit/http_transport.py: httptools on asyncio, httpx API)."""
    return FastTransport(
        max_connections=settings.upstream_max_connections,
        connect_timeout_s=settings.upstream_connect_timeout_s,
    )


def make_upstream(
    name: str,
    base_url: str,
    settings: Settings,
    metrics: GatewayMetrics,
    transport: httpx.AsyncBaseTransport,
) -> Upstream:
    """Build the client of one upstream on ``transport`` (injected by tests)."""
    timeout = httpx.Timeout(
        connect=settings.upstream_connect_timeout_s,
        read=settings.upstream_read_timeout_s,
        write=settings.upstream_write_timeout_s,
        pool=settings.upstream_pool_timeout_s,
    )
    client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)
    url = httpx.URL(base_url)

    def on_change(state: str) -> None:
        metrics.set_circuit(name, state)
        log.warning("circuit of upstream %s is now %s", name, state, extra={"upstream": name})

    breaker = CircuitBreaker(
        threshold=settings.circuit_failure_threshold,
        cooldown_s=settings.circuit_cooldown_s,
        on_change=on_change,
    )
    metrics.set_circuit(name, "closed")
    return Upstream(
        name=name,
        base_url=url,
        client=client,
        transport=transport,
        breaker=breaker,
        timeout=timeout.as_dict(),  # type: ignore[arg-type]
        scheme=url.scheme.encode(),
        host=url.host,
        port=url.port,
    )


_UPSTREAM_TITLES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class UpstreamFailure(AppError):
    """A translated transport failure: a 502/503/504 problem that names the upstream and
    the kind of failure (``upstream-timeout``, ``upstream-connect``, ``upstream-reset``,
    ``upstream-circuit-open``)."""

    def __init__(
        self,
        status: int,
        kind: str,
        upstream: str,
        detail: str,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(
            detail,
            status=status,
            title=_UPSTREAM_TITLES[status],
            slug="upstream-" + kind.replace("_", "-"),
            headers={"Retry-After": str(retry_after)} if retry_after else None,
            upstream=upstream,
        )
        self.kind = kind
        self.retry_after = retry_after


def dropped_mid_response(
    upstream: Upstream, metrics: GatewayMetrics, exc: Exception, request_id: str
) -> UpstreamFailure:
    """An upstream that failed after its status line: the breaker and the metrics learn of
    it, and the 502 to send if nothing has gone to the client yet."""
    upstream.breaker.failure()
    metrics.upstream_errors.labels(upstream.name, "reset").inc()
    log.warning(
        "upstream %s failed mid-response: %r", upstream.name, exc, extra={"request_id": request_id}
    )
    return UpstreamFailure(
        502, "reset", upstream.name, f"upstream '{upstream.name}' dropped the connection"
    )


def _translate(upstream: Upstream, exc: Exception) -> UpstreamFailure:
    name = upstream.name
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailure(504, "timeout", name, f"upstream '{name}' did not answer in time")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamFailure(502, "connect", name, f"upstream '{name}' refused the connection")
    return UpstreamFailure(502, "reset", name, f"upstream '{name}' dropped the connection")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body (at most ``limit`` bytes, else ``BodyTooLarge``).

    The proxy reads it before it takes an upstream connection, so a slow client holds only
    its own socket; the server's deadlines (svckit/http_server.py) bound the wait."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            seen += len(chunk)
            if seen > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _HttpxAdapter:
    """An ``httpx.Response`` seen through the proxy's response interface."""

    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(n.lower(), v) for n, v in response.headers.raw]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._response.stream.__aiter__()  # type: ignore[union-attr]

    async def aclose(self) -> None:
        await self._response.aclose()


class UpstreamResponse(Protocol):
    """What the proxy streams back: status, lower-cased raw headers, body chunks."""

    status: int
    headers: list[tuple[bytes, bytes]]

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


# A request's headers and body as the proxy passes them on.
Headers = list[tuple[bytes, bytes]]
Body = bytes | AsyncIterator[bytes] | None


async def _send_once(
    upstream: Upstream, method: str, target: bytes, headers: Headers, body: Body
) -> UpstreamResponse:
    transport = upstream.transport
    if isinstance(transport, FastTransport):
        return await transport.request_raw(
            method.encode(),
            upstream.host,
            upstream.port_or_default,
            target,
            headers,
            body,
            host_header=upstream.host_header,
            tls=upstream.scheme == b"https",
            connect_timeout=upstream.timeout["connect"],
            read_timeout=upstream.timeout["read"],
            write_timeout=upstream.timeout["write"],
            pool_timeout=upstream.timeout["pool"],
        )
    request = httpx.Request(method, upstream.url(target), headers=headers, content=body)
    request.extensions["timeout"] = upstream.timeout
    return _HttpxAdapter(await transport.handle_async_request(request))


async def send_upstream(
    upstream: Upstream,
    method: str,
    target: bytes,
    headers: Headers,
    body: Body,
    *,
    retries: int,
    backoff_s: float,
    metrics: GatewayMetrics,
) -> UpstreamResponse:
    """Send one request (``target`` = raw path and query), retrying connection failures of
    idempotent requests with a replayable body (bounded); feeds the circuit breaker."""
    breaker = upstream.breaker
    attempt = 0
    retryable = method in IDEMPOTENT and not isinstance(body, AsyncIterator)
    while True:
        if not breaker.allow():
            metrics.upstream_errors.labels(upstream.name, "circuit_open").inc()
            raise UpstreamFailure(
                503,
                "circuit_open",
                upstream.name,
                f"upstream '{upstream.name}' is unavailable (circuit open)",
                retry_after=breaker.retry_after(),
            )
        try:
            response = await _send_once(upstream, method, target, headers, body)
        except (BodyTooLarge, ClientGone):
            breaker.release()
            raise
        except (httpx.TransportError, OSError) as exc:
            failure = _translate(upstream, exc)
            metrics.upstream_errors.labels(upstream.name, failure.kind).inc()
            log.info(
                "upstream %s failed: %r", upstream.name, exc, extra={"upstream": upstream.name}
            )
            connect_failed = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            if retryable and connect_failed and attempt < retries:
                # The breaker judges requests, not attempts: one unlucky request with its
                # retries must not open the circuit alone.
                breaker.release()
                attempt += 1
                if backoff_s:
                    await asyncio.sleep(backoff_s * attempt)
                continue
            breaker.failure()
            raise failure from exc
        except BaseException:
            breaker.release()
            raise
        breaker.success()
        return response
