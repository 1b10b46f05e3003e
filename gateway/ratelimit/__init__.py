"""Distributed rate limiting in Redis (GCRA in one Lua script) for the gateway's front layer.

Wiring (``gateway/app.py``): ``start_rate_limiter(...)`` in the lifespan →
``app.state.rate_limiter``; ``make_resolver(settings.trusted_proxies)`` →
``app.state.client_address``."""

from gateway.ratelimit.client_address import client_address, make_resolver
from gateway.ratelimit.policies import FailureMode, Policy, RateLimitSettings, default_policies
from gateway.ratelimit.service import (
    RedisRateLimiter,
    make_redis,
    running_rate_limiter,
    start_rate_limiter,
)
from gateway.ratelimit.verdicts import LimitDecision

__all__ = [
    "FailureMode",
    "LimitDecision",
    "Policy",
    "RateLimitSettings",
    "RedisRateLimiter",
    "client_address",
    "default_policies",
    "make_redis",
    "make_resolver",
    "running_rate_limiter",
    "start_rate_limiter",
]
