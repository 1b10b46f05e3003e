"""Stage 5, rate limit: one hit of the route group's policy, keyed by the user or, for an
anonymous request, the client address (``gateway/ratelimit_api.py`` is the contract)."""

from __future__ import annotations

import logging

from starlette.datastructures import State

from gateway.front.context import RequestContext
from gateway.ratelimit_api import ClientAddressResolver, RateLimiter
from svckit.problems import RateLimited, ServiceUnavailable

log = logging.getLogger("boxoffice.gateway")


async def rate_limit(ctx: RequestContext, limiter: RateLimiter, state: State) -> None:
    """Count the request; its headers go on the answer; over the limit → 429 (503 when the
    limiter fails closed), with ``Retry-After``. ``state`` is the app's: its
    ``client_address`` resolver keys anonymous requests."""
    user = ctx.user
    if user is not None:
        subject = "user:" + user.user_id
    else:
        resolver: ClientAddressResolver = state.client_address
        subject = "ip:" + resolver(ctx.scope)
    try:
        decision = await limiter.hit(ctx.group, subject)
    except Exception as e:  # the limiter should decide itself; never a 500
        log.exception("rate limiter failed", extra={"request_id": ctx.request_id})
        raise ServiceUnavailable("rate limiting is unavailable") from e
    ctx.headers.extend(decision.headers)
    if not decision.allowed:
        retry_after = max(1, decision.retry_after)
        if decision.status == 503:
            raise ServiceUnavailable(
                "rate limiting is unavailable; retry shortly", retry_after=retry_after
            )
        raise RateLimited("rate limit exceeded", headers={"Retry-After": str(retry_after)})
