"""Rate-limit metrics, registered in the gateway's own registry (``app.state.metrics``)."""

from __future__ import annotations

from contextlib import suppress

from prometheus_client import CollectorRegistry, Counter, Gauge

# Outcomes of ``boxoffice_ratelimit_decisions_total``.
ALLOWED = "allowed"  # Redis said yes
LIMITED = "limited"  # Redis said no → 429
FAIL_OPEN = "fail_open"  # Redis unavailable, policy open → let through uncounted
FAIL_CLOSED = "fail_closed"  # Redis unavailable, policy closed → 503
LOCAL_ALLOWED = "local_allowed"  # Redis unavailable, in-process limiter said yes
LOCAL_LIMITED = "local_limited"  # Redis unavailable, in-process limiter said no → 429


class RateLimitMetrics:
    """Decisions by policy and outcome, Redis errors by kind, live gateway count."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "boxoffice_ratelimit_decisions_total",
            "Rate-limit decisions by policy and outcome.",
            ["policy", "outcome"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "boxoffice_ratelimit_redis_errors_total",
            "Rate-limit calls to Redis that failed, by kind (timeout, connection, error).",
            ["kind"],
            registry=self.registry,
        )
        self.degraded = Gauge(
            "boxoffice_ratelimit_degraded",
            "1 while the rate limiter is using its failure modes instead of Redis.",
            registry=self.registry,
        )
        self.live_gateways = Gauge(
            "boxoffice_ratelimit_live_gateways",
            "Gateway instances seen in Redis within the heartbeat window (last known).",
            registry=self.registry,
        )
        # labels() takes a lock and builds a tuple on every call; the hot path is cheaper
        # with the children cached.
        self._children: dict[tuple[str, str], Counter] = {}

    def unregister(self) -> None:
        """Remove these metrics from the registry (an app's lifespan may run again)."""
        for collector in (self.decisions, self.redis_errors, self.degraded, self.live_gateways):
            with suppress(KeyError):
                self.registry.unregister(collector)

    def decision(self, policy: str, outcome: str) -> None:
        """Count one decision."""
        child = self._children.get((policy, outcome))
        if child is None:
            child = self._children[(policy, outcome)] = self.decisions.labels(policy, outcome)
        child.inc()
