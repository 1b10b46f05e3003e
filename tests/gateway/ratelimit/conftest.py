"""Limiters on either hot-path backend: every Redis test runs on both (STYLE: the same
storage tests on every backend, by parametrization)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from gateway.ratelimit.policies import RateLimitSettings
from gateway.ratelimit.service import RedisRateLimiter, make_redis
from svckit.redis_client import make_pipelined, resolve

MakeLimiter = Callable[..., RedisRateLimiter]


@pytest.fixture(params=["pipelined", "redis-py"])
async def make_limiter(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[MakeLimiter]:
    """``make_limiter(settings, url=None, **kw)``: a limiter on the test Redis (or ``url``)
    through the auto-pipelined client or through redis-py; closed after the test."""
    made: list[RedisRateLimiter] = []

    def make(settings: RateLimitSettings, url: str | None = None, **kw: object) -> RedisRateLimiter:
        url = url or redis_url
        client = make_redis(url, settings)
        pipelined = (
            make_pipelined(resolve(url, timeout_s=settings.redis_timeout_s))
            if request.param == "pipelined"
            else None
        )
        limiter = RedisRateLimiter(
            redis=client,
            settings=settings,
            owns_redis=client,
            pipelined=pipelined,
            **kw,  # type: ignore[arg-type]
        )
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()
