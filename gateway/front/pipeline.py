"""The front layer's pipeline: the stages in order, one error path, one access-log line.

Every request passes here first (``GatewayApp.__call__``)::

    context → [preflight] → route → body limit → authenticate → rate limit → admit
            → dispatch: forward (proxy, micro-cache) | local (fast path, FastAPI app)

Paths outside ``/api/`` (ops, OpenAPI) skip from the body limit straight to the FastAPI app.
A stage refuses a request by raising an ``AppError``; :func:`svckit.problems.send_error`
writes it, with the request's CORS and rate-limit headers.

Why pure ASGI and plain functions rather than FastAPI routes or one middleware per stage:
the proxy is the hottest code of the system at on-sale time, and Starlette routing,
``BaseHTTPMiddleware`` and per-request object churn cost more CPU than the proxying itself
(BENCHMARKS.md, "Issue 18 (h18b): the gateway's front layer as named stages").
"""

from __future__ import annotations

import contextlib
import logging
import time

from starlette.datastructures import State

from gateway.config import Settings
from gateway.fastpath import FastCreate, FastRoute
from gateway.front import rate_limit
from gateway.front.admit import admit
from gateway.front.authenticate import authenticate
from gateway.front.body import check_length
from gateway.front.context import Cors, RequestContext
from gateway.front.forward import Forward
from gateway.front.local import LocalDispatch
from gateway.front.route import route
from gateway.metrics import GatewayMetrics
from gateway.ratelimit_api import RateLimiter
from gateway.routes import RouteTable
from shared.verified_tokens import VerifiedTokens
from svckit.middleware import ASGIApp, Receive, Scope, Send, observe
from svckit.problems import AppError, InternalError, send_error

log = logging.getLogger("boxoffice.gateway")


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
        self.state = state  # app.state: upstreams, rate_limiter, client_address (lifespan)
        self.metrics = metrics
        self.table = RouteTable(settings.routes)
        self.cors = Cors(settings.cors_origins)
        self.limit = settings.max_body_bytes
        self.secret = settings.secret_key
        self.tokens: VerifiedTokens = state.access_tokens
        self.local = LocalDispatch(
            app,
            state=state,
            limit=self.limit,
            fast_routes=fast_routes or [],
            fast_creates=fast_creates or [],
        )
        self.forward = Forward(
            state=state,
            metrics=metrics,
            limit=self.limit,
            retries=settings.upstream_retries,
            backoff_s=settings.upstream_retry_backoff_s,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.local.app(scope, receive, send)
            return
        started = time.perf_counter()
        ctx = RequestContext(scope)
        if ctx.origin is not None:
            self.cors.apply(ctx)
        # The stages in order (one coroutine for all: this runs on every request); each
        # refuses with an ``AppError`` or lets the request go on.
        try:
            if ctx.method == "OPTIONS" and Cors.is_preflight(ctx):
                await self.cors.preflight(ctx, send)
            elif not ctx.path.startswith("/api/"):
                check_length(ctx, self.limit)
                await self.local.inner(ctx, receive, send)
            else:
                match = route(ctx, self.table)
                if ctx.content_length is not None or ctx.chunked:
                    check_length(ctx, self.limit)
                authenticate(ctx, self.tokens)
                limiter: RateLimiter | None = self.state.rate_limiter
                if limiter is not None:
                    try:
                        decision = await limiter.hit(ctx.group, rate_limit.subject(ctx, self.state))
                    except Exception as e:
                        raise rate_limit.failed(ctx) from e
                    rate_limit.enforce(ctx, decision)
                if match.route.admission is not None:
                    admit(ctx, self.secret)
                if match.is_local:
                    await self.local(ctx, receive, send)
                else:
                    await self.forward(ctx, receive, send)
        except AppError as e:
            ctx.status = e.status
            await send_error(send, e, ctx.request_id, ctx.headers)
        except Exception:
            # Proxied requests never pass Starlette's error middleware: this is their last
            # line. A problem+json 500 if nothing was sent yet; the bug is logged.
            ctx.status = 500
            log.exception("unhandled error in the gateway", extra={"request_id": ctx.request_id})
            with contextlib.suppress(Exception):
                await send_error(send, InternalError(), ctx.request_id, ctx.headers)
        finally:
            observe(
                self.metrics,
                "gateway",
                ctx.method,
                ctx.path,
                ctx.group,
                ctx.status,
                started,
                ctx.request_id,
                ctx.upstream,
            )

    # The dispatch stage's parts, as tests and benchmarks reach them.
    @property
    def app(self) -> ASGIApp:
        """The inner FastAPI app."""
        return self.local.app

    @app.setter
    def app(self, app: ASGIApp) -> None:
        self.local.app = app

    @property
    def fast_routes(self) -> list[FastRoute]:
        """The fast routes the local dispatch tries."""
        return self.local.fast_routes

    @fast_routes.setter
    def fast_routes(self, routes: list[FastRoute]) -> None:
        self.local.fast_routes = routes

    @property
    def fast_creates(self) -> dict[bytes, FastCreate]:
        """The fast creates the local dispatch tries, by path."""
        return self.local.fast_creates

    @fast_creates.setter
    def fast_creates(self, creates: dict[bytes, FastCreate]) -> None:
        self.local.fast_creates = creates
