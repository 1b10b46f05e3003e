"""Stage 7b, dispatch to an upstream: the streaming reverse proxy, or the micro-cache for
a cacheable ``GET`` (``gateway/cache.py``). Proxied requests never touch FastAPI."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from starlette.datastructures import State

from gateway.cache import CachedResponse, MicroCache
from gateway.front.body import client_gone, read
from gateway.front.context import RequestContext
from gateway.metrics import GatewayMetrics
from gateway.proxy import (
    REQUEST_DROP,
    RESPONSE_DROP,
    BodyTooLarge,
    ClientGone,
    Upstream,
    connection_named,
    dropped_mid_response,
    is_identity_header,
    send_upstream,
)
from svckit.middleware import Receive, Send
from svckit.problems import PayloadTooLarge

log = logging.getLogger("boxoffice.gateway")

# Responses up to this size (by Content-Length) are read whole before being sent on.
SMALL_RESPONSE = 64 * 1024


def forwarded_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    """The request's headers as the upstream gets them: hop-by-hop and identity claims
    dropped, the forwarding headers rebuilt, the request id ours."""
    scope = ctx.scope
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
        if name in REQUEST_DROP or name in named or is_identity_header(name):
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
    headers.append((b"x-request-id", ctx.request_id.encode()))
    return headers


class Forward:
    """Sends a matched proxied route to its upstream and streams the answer back."""

    def __init__(
        self, *, state: State, metrics: GatewayMetrics, limit: int, retries: int, backoff_s: float
    ) -> None:
        self.state = state  # app.state: upstreams, micro_cache (lifespan)
        self.metrics = metrics
        self.limit = limit
        # send_upstream's keyword arguments (``metrics`` for the upstream error counts).
        self.retry: dict[str, Any] = {
            "retries": retries,
            "backoff_s": backoff_s,
            "metrics": metrics,
        }

    async def __call__(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        """Forward the request; ``ctx.status`` is what the client was sent."""
        match = ctx.match
        assert match is not None
        upstreams: dict[str, Upstream] = self.state.upstreams
        upstream = upstreams[match.route.upstream]
        ctx.upstream = upstream.name
        headers = forwarded_headers(ctx)
        # The whole body is read before an upstream connection is taken: a client that
        # trickles its body holds only its own socket (until the server's deadline).
        data = await read(ctx, receive, self.limit) if ctx.length else None
        query: bytes = ctx.scope.get("query_string", b"")
        target = match.upstream_path + b"?" + query if query else match.upstream_path

        cache: MicroCache | None = self.state.micro_cache
        if cache is not None and data is None:
            key = cache.key_for(match.route.group, ctx.method, target, ctx.scope["headers"])
            if key is not None:
                await self.cached(ctx, send, upstream, cache, key, target, headers)
                return

        try:
            response = await send_upstream(
                upstream, ctx.method, target, headers, data, **self.retry
            )
        except BodyTooLarge as e:
            raise PayloadTooLarge(self.limit) from e
        except ClientGone as e:
            raise client_gone(ctx) from e

        status = ctx.status = response.status
        started = False
        try:
            rnamed = connection_named(response.headers)
            out = []
            small = False
            for n, v in response.headers:
                if n in RESPONSE_DROP or n in rnamed:
                    continue
                if n == b"content-length":
                    small = len(v) <= 5 and v.isdigit() and int(v) <= SMALL_RESPONSE
                out.append((n, v))
            out.append((b"x-request-id", ctx.request_id.encode()))
            out.extend(ctx.headers)
            if small:
                # A small body is read whole before the status line goes out: usually it
                # came in the same packet as the head, and if the upstream dies in between
                # the client still gets a clean 502 instead of a cut-off response.
                whole = b"".join([chunk async for chunk in response])
                started = True
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": whole})
                return
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
            log.info("client disconnected mid-response", extra={"request_id": ctx.request_id})
        except httpx.TransportError as e:
            failure = dropped_mid_response(upstream, self.metrics, e, ctx.request_id)
            if not started:
                raise failure from e
            # The status line already went out: the only honest signal left is to end the
            # connection without completing the body.
        finally:
            await response.aclose()

    async def cached(
        self,
        ctx: RequestContext,
        send: Send,
        upstream: Upstream,
        cache: MicroCache,
        key: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """A cacheable GET: served from the micro-cache, by joining the one in-flight
        upstream request for its key, or by making it (the body is buffered for the cache;
        cacheable groups are small catalog pages)."""

        async def fetch() -> CachedResponse:
            response = await send_upstream(
                upstream, ctx.method, target, headers, None, **self.retry
            )
            try:
                data = b"".join([chunk async for chunk in response])
            except httpx.TransportError as e:
                raise dropped_mid_response(upstream, self.metrics, e, ctx.request_id) from e
            finally:
                await response.aclose()
            return CachedResponse(response.status, response.headers, data)

        cached, how = await cache.fetch(ctx.group, key, fetch)
        rnamed = connection_named(cached.headers)
        out = [
            (n, v)
            for n, v in cached.headers
            if n not in RESPONSE_DROP and n not in rnamed and n != b"content-length"
        ]
        out.append((b"content-length", str(len(cached.body)).encode()))
        out.append((b"x-cache", how.value.encode()))
        out.append((b"x-request-id", ctx.request_id.encode()))
        out.extend(ctx.headers)
        ctx.status = cached.status
        await send({"type": "http.response.start", "status": cached.status, "headers": out})
        await send({"type": "http.response.body", "body": cached.body})
