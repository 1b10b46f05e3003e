"""Rate-limit policies: one per route group, each a sustained rate, a burst and what to do
when Redis cannot answer.

Semantics (GCRA, the "virtual scheduling" form used by redis-cell): requests of one subject
are admitted at ``rate`` per ``period_s`` on average; a subject that has been idle may send up
to ``burst`` requests at once. So from rest, over any window of ``w`` seconds at most
``burst + rate * w / period_s`` requests are admitted, and after a refusal the next request is
admitted ``period_s / rate`` seconds after the previous admission's slot.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FailureMode(StrEnum):
    """What a policy does while Redis is down or slow."""

    OPEN = "open"  # let the request through (logged and counted)
    CLOSED = "closed"  # refuse with 503 + Retry-After
    LOCAL = "local"  # an in-process limiter at rate / live gateway instances


class Policy(BaseModel):
    """The limit of one route group."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(gt=0, description="requests admitted per period, sustained")
    period_s: float = Field(default=1.0, gt=0)
    burst: int = Field(ge=1, description="requests admitted at once after being idle")
    failure_mode: FailureMode = FailureMode.LOCAL

    @property
    def interval_us(self) -> int:
        """The emission interval (time between two sustained admissions) in microseconds.

        Rounded to a whole microsecond because the Lua script keeps exact integers; the
        relative error is below 1e-6 for any rate under 1000/s."""
        return max(1, round(self.period_s * 1_000_000 / self.rate))

    def scaled(self, instances: int) -> Policy:
        """This policy's share on one of ``instances`` gateways (for the local fallback).

        The burst is divided too (rounded up, at least 1), otherwise N gateways would admit
        N bursts."""
        n = max(1, instances)
        return self.model_copy(
            update={"rate": self.rate / n, "burst": max(1, math.ceil(self.burst / n))}
        )


def default_policies() -> dict[str, Policy]:
    """Policies of the default route groups (see ``gateway.config.default_routes``).

    ``default`` applies to any group without a policy of its own."""
    p = Policy
    local, closed, open_ = FailureMode.LOCAL, FailureMode.CLOSED, FailureMode.OPEN
    return {
        # Catalog browsing: generous, and kept up from memory if Redis fails.
        "browse": p(rate=20, burst=40, failure_mode=local),
        # Queue status polling (clients poll every second or two; reconnect bursts).
        "queue": p(rate=5, burst=15, failure_mode=local),
        # Guest tokens: keyed by address mostly, and many users can share one (NAT).
        "auth": p(rate=5, burst=20, failure_mode=local),
        "ticketing-read": p(rate=10, burst=20, failure_mode=local),
        # Holds and reservations: a flood here is what the limiter is for; without Redis
        # the ticketing side cannot work anyway, so refuse rather than guess.
        "ticketing-write": p(rate=2, burst=5, failure_mode=closed),
        # Admin calls carry the admin token; never lock the operator out.
        "admin": p(rate=10, burst=20, failure_mode=open_),
        "default": p(rate=20, burst=40, failure_mode=local),
    }


class RateLimitSettings(BaseModel):
    """Rate-limit settings (``Settings.rate_limit``; JSON in ``BOXOFFICE_RATE_LIMIT``).

    ``policies`` given in settings are merged over the defaults field by field, so
    ``{"policies": {"browse": {"rate": 5}}}`` changes only the browsing rate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    policies: dict[str, Policy] = Field(default_factory=default_policies)
    # Bound on the one Redis call per request; past it the policy's failure mode decides.
    # It includes the gateway's own event-loop lag: on an overloaded host a tighter bound
    # trips the fallback although Redis is fine. Measured in the full on-sale simulation
    # (BENCHMARKS.md): 0.1 s made the fail-closed ticketing writes answer 114 503s during
    # the join burst while Redis was healthy; 0.5 s gave none.
    redis_timeout_s: float = Field(default=0.5, gt=0, le=5)
    # The limiter's own connection pool (blocking: a request waits for a free connection
    # within the timeout instead of failing, as redis-py's default pool does past 100).
    redis_max_connections: int = Field(default=64, ge=1)
    # 0: the limiter commands of one event-loop iteration go to Redis in one write. Above
    # 0, while busy (a recent write carried more than one command), commands are also
    # collected for this long. That halved the limiter's cost once; since responses go out
    # in one write (svckit/http_server.py) it costs throughput instead: at 64 connections
    # 1 ms gave 11,000-12,300 cached answers/s against 14,600-16,600 with 0, and a limiter
    # cost of 20-27 % against 16-19 % (bench/micro_cache.py, bench/ratelimit.py;
    # docs/benchmarks-history.md, fourth session).
    redis_batch_window_ms: float = Field(default=0.0, ge=0, le=10)
    # After a Redis failure, requests go straight to the fallback for this long; then one
    # request probes Redis again (so a dead Redis costs one timeout per cool-down, not one
    # per request).
    redis_cooldown_s: float = Field(default=1.0, gt=0)
    # Live-instance heartbeat: period, and how recent a heartbeat must be to count.
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    instance_window_s: float = Field(default=6.0, gt=0)

    @field_validator("policies", mode="before")
    @classmethod
    def _merge_over_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {k: v.model_dump() for k, v in default_policies().items()}
        for name, given in value.items():
            if isinstance(given, Policy):
                given = given.model_dump()
            if isinstance(given, dict) and name in merged:
                merged[name] = {**merged[name], **given}
            else:
                merged[name] = given
        return merged

    @model_validator(mode="after")
    def _window_covers_heartbeats(self) -> RateLimitSettings:
        if self.instance_window_s < self.heartbeat_interval_s:
            raise ValueError("instance_window_s must be at least heartbeat_interval_s")
        if "default" not in self.policies:
            raise ValueError("policies need a 'default' entry")
        return self

    def policy_for(self, group: str) -> tuple[str, Policy]:
        """The policy name and policy that govern route group ``group``."""
        policy = self.policies.get(group)
        if policy is not None:
            return group, policy
        return "default", self.policies["default"]
