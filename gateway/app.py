"""The gateway application factory: ``uvicorn gateway.app:create_app --factory``.

Layout of a request: ``GatewayFront`` (pure ASGI, ``gateway/front/``) sees every request
first and proxies ``/api/*`` routes of the route table straight to their upstream; what the
gateway answers itself (``/api/auth``, ``/api/queue``, ops, OpenAPI) goes on to this FastAPI
app. The lifespan owns the Redis client, the upstream clients, the rate limiter, the
micro-cache and the queue's admission loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from starlette.types import Receive, Scope, Send

from gateway.cache import MicroCache
from gateway.config import Settings
from gateway.front import GatewayFront
from gateway.identity.router import fast_creates as identity_fast_creates
from gateway.identity.router import router as identity_router
from gateway.metrics import GatewayMetrics
from gateway.proxy import (
    Upstream,
    fast_transport,
    make_upstream,
    stock_transport,
)
from gateway.queue.router import fast_routes as queue_fast_routes
from gateway.queue.router import router as queue_router
from gateway.queue.runtime import build_queue, start_queue
from gateway.ratelimit import RedisRateLimiter, make_resolver, start_rate_limiter
from gateway.ratelimit_api import socket_peer
from gateway.web import WebApp, load_bundle
from shared.verified_tokens import VerifiedTokens
from svckit.errors import add_exception_handlers
from svckit.gc_tuning import freeze_startup_heap, space_full_collections
from svckit.logs import configure_logging
from svckit.ops import ReadinessCheck, ops_router
from svckit.redis_client import make_async_redis, ping_all, resolve

log = logging.getLogger("boxoffice.gateway")

QUEUE_PREFIX = "/api/queue"
AUTH_PREFIX = "/api/auth"


class GatewayApp(FastAPI):
    """A FastAPI app whose HTTP entry is the gateway's front layer.

    Proxied requests are answered by ``GatewayFront`` without entering Starlette's
    middleware stack (server-error, telemetry, body-limit and exception layers cost CPU on
    every proxied request and add nothing there); what the gateway answers itself goes on
    to the regular FastAPI stack through ``fastapi_asgi``."""

    front: GatewayFront | None = None

    async def fastapi_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The plain FastAPI app (routing, dependencies, exception handlers)."""
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and scope["type"] == "http":
            await front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def _readiness_checks(settings: Settings) -> dict[str, ReadinessCheck]:
    async def redis_ready(request: Request) -> None:
        # Not only PING: the limiter and the admission loop must be getting answers too.
        await ping_all(request.app.state.redis)
        limiter = request.app.state.rate_limiter
        if limiter is not None and limiter.degraded:
            raise RuntimeError("rate limiter: Redis unavailable, using failure modes")
        queue = getattr(request.app.state, "queue", None)
        if queue is not None and queue.loop.failing:
            raise RuntimeError(f"queue admission: {queue.loop.failing}")

    checks: dict[str, ReadinessCheck] = {"redis": redis_ready}

    def upstream_check(name: str) -> ReadinessCheck:
        async def check(request: Request) -> None:
            upstream: Upstream = request.app.state.upstreams[name]
            # Bounded on its own: a hanging upstream must not hold /readyz.
            response = await asyncio.wait_for(
                upstream.client.get("/healthz"), settings.readiness_timeout_s
            )
            if response.status_code != 200:
                raise RuntimeError(f"/healthz answered {response.status_code}")

        return check

    for name in settings.upstream_urls():
        checks[name] = upstream_check(name)
    return checks


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> GatewayApp:
    """Build the gateway. ``transport`` replaces the upstream transport (tests inject a
    respx router with ``httpx.MockTransport(router.async_handler)``); otherwise
    ``settings.upstream_transport`` picks the fast (default) or the stock httpx one."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        redis = make_async_redis(
            resolve(
                settings.require_redis_url(),
                mode=settings.redis_mode,
                timeout_s=settings.redis_socket_timeout_s,
            )
        )
        if transport is not None:
            shared_transport = transport
            owns_transport = False
        elif settings.upstream_transport == "httpx":
            shared_transport = stock_transport(settings)
            owns_transport = True
        else:
            shared_transport = fast_transport(settings)
            owns_transport = True
        upstreams = {
            name: make_upstream(name, url, settings, metrics, shared_transport)
            for name, url in settings.upstream_urls().items()
        }
        app.state.redis = redis
        app.state.upstreams = upstreams

        # Rate limiting (gateway/ratelimit/): its own Redis client (short timeout, no
        # retries, blocking pool) and the instance heartbeat; closed below.
        limiter: RedisRateLimiter | None = None
        if settings.rate_limit.enabled:
            limiter = await start_rate_limiter(
                settings=settings.rate_limit,
                redis_url=settings.require_redis_url(),
                redis_mode=settings.redis_mode,
                registry=metrics.registry,
            )
        app.state.rate_limiter = limiter
        app.state.client_address = make_resolver(settings.trusted_proxies)
        # Micro-cache (gateway/cache.py): per process; off unless route groups are configured.
        app.state.micro_cache = (
            MicroCache(settings.micro_cache_ttl_s, max_entries=settings.micro_cache_max_entries)
            if settings.micro_cache_ttl_s
            else None
        )

        # Background tasks are cancelled (and awaited) at shutdown, before the clients close.
        # The queue's admission loop of this instance has its own Redis client, closed when
        # the task ends.
        background: list[asyncio.Task[None]] = []
        app.state.queue = build_queue(
            settings=settings,
            api_client=upstreams["api"].client,
            registry=metrics.registry,
        )
        background.append(start_queue(app.state.queue))
        app.state.background = background
        freeze_startup_heap(settings.gc_freeze)
        # Open SSE streams are long-lived objects every full collection walks (BENCHMARKS.md,
        # "A waiting room for a million": 1-2 s passes at 10,000 streams).
        space_full_collections()
        try:
            yield {
                "redis": redis,
                "settings": settings,
                "upstreams": upstreams,
                "metrics": metrics,
            }
        finally:
            for task in background:
                task.cancel()
            if background:
                # Bounded: a task that ignores cancellation must not hang the shutdown.
                _, stuck = await asyncio.wait(
                    background, timeout=settings.background_shutdown_timeout_s
                )
                for task in stuck:
                    log.error("background task %s did not stop in time", task.get_name())
            if owns_transport:
                # The clients share this transport; closing it closes every pooled connection.
                # An injected transport belongs to the caller (a test may reuse it).
                for upstream in upstreams.values():
                    await upstream.client.aclose()
            if limiter is not None:
                await limiter.aclose()
            await redis.aclose()

    app = GatewayApp(
        title="Boxoffice gateway",
        version="0.1.0",
        description="The single public URL: routing, identity, rate limiting, queue admission.",
        lifespan=lifespan,
        # A redirect's Location would be built from the client's Host header: answer 404.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    # Defaults for code paths that run without the lifespan (never on a served app).
    app.state.rate_limiter = None
    app.state.micro_cache = None
    app.state.client_address = socket_peer
    app.state.access_tokens = VerifiedTokens(settings.secret_key)
    add_exception_handlers(app)
    app.include_router(ops_router(metrics=metrics, checks=_readiness_checks(settings)))
    app.include_router(identity_router, prefix=AUTH_PREFIX, tags=["identity"])
    app.include_router(queue_router, prefix=QUEUE_PREFIX, tags=["queue"])
    # The web app (gateway/web.py) answers its own paths before FastAPI routing.
    web = WebApp(app.fastapi_asgi, load_bundle(max_seats_per_user=settings.max_seats_per_user))
    app.front = GatewayFront(
        web,
        settings=settings,
        state=app.state,
        metrics=metrics,
        fast_routes=queue_fast_routes(QUEUE_PREFIX),
        fast_creates=identity_fast_creates(AUTH_PREFIX),
    )
    return app
