"""Stage 5, rate limit: one hit of the route group's policy, keyed by the user or, for an
anonymous request, the client address (``gateway/ratelimit_api.py`` is the contract).

The stage is two plain functions around the limiter's one ``await`` (which the pipeline
makes itself): :func:`subject` before it, :func:`enforce` after it; a limiter that raises
anyway is :func:`failed`. Not a coroutine of its own: it runs on every request."""

from __future__ import annotations

import logging

from starlette.datastructures import State

from gateway.front.context import RequestContext
from gateway.ratelimit_api import ClientAddressResolver, RateLimitDecision
from svckit.problems import AppError, RateLimited, ServiceUnavailable

log = logging.getLogger("boxoffice.gateway")


def subject(ctx: RequestContext, state: State) -> str:
    """Whom the request counts against: ``user:<id>``, else ``ip:<address>`` (``state`` is
    the app's: its ``client_address`` resolver)."""
    user = ctx.user
    if user is not None:
        return "user:" + user.user_id
    resolver: ClientAddressResolver = state.client_address
    return "ip:" + resolver(ctx.scope)


def enforce(ctx: RequestContext, decision: RateLimitDecision) -> None:
    """The decision's headers go on the answer; over the limit → 429 (503 when the limiter
    fails closed), with ``Retry-After``."""
    ctx.headers.extend(decision.headers)
    if not decision.allowed:
        retry_after = max(1, decision.retry_after)
        if decision.status == 503:
            raise ServiceUnavailable(
                "rate limiting is unavailable; retry shortly", retry_after=retry_after
            )
        raise RateLimited("rate limit exceeded", headers={"Retry-After": str(retry_after)})


def failed(ctx: RequestContext) -> AppError:
    """A limiter that raised (it should decide about Redis trouble itself): 503, never a
    500; the bug is logged."""
    log.exception("rate limiter failed", extra={"request_id": ctx.request_id})
    return ServiceUnavailable("rate limiting is unavailable")
