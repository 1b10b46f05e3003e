"""Redis stopped, or hung: each policy does what it is configured to do (open, closed, local
at its share of the live gateways), nothing hangs, and Redis is used again by itself once it
is back. Only private servers are broken here, never the shared Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.ratelimit.instances import InstanceTracker
from gateway.ratelimit.metrics import RateLimitMetrics
from gateway.ratelimit.policies import RateLimitSettings
from gateway.ratelimit.service import RedisRateLimiter, make_redis
from shared import keys
from tests.fixtures.services import EmbeddedRedis
from tests.gateway.ratelimit.conftest import MakeLimiter

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.05
COOLDOWN_S = 0.3
# A refused connection fails at once; the budget covers scheduling noise on a busy machine.
BOUND_S = TIMEOUT_S + 0.1

SETTINGS = RateLimitSettings.model_validate(
    {
        "policies": {
            "o": {"rate": 1, "period_s": 10, "burst": 4, "failure_mode": "open"},
            "c": {"rate": 1, "period_s": 10, "burst": 4, "failure_mode": "closed"},
            "l": {"rate": 1, "period_s": 10, "burst": 4, "failure_mode": "local"},
        },
        "redis_timeout_s": TIMEOUT_S,
        "redis_cooldown_s": COOLDOWN_S,
        "heartbeat_interval_s": 1,
        "instance_window_s": 5,
    }
)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def redis_errors(registry: CollectorRegistry) -> float:
    # By any kind: a refused connect under a busy machine may surface as a timeout.
    return sum(
        sample(registry, "boxoffice_ratelimit_redis_errors_total", kind=k)
        for k in ("timeout", "connection", "error")
    )


async def timed(coro: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A Redis this test may stop and start."""
    server = EmbeddedRedis()
    server.start()
    yield server
    with suppress(Exception):  # the test may have left it stopped
        server.stop()


@pytest.fixture
async def limiter(
    private_redis: EmbeddedRedis, make_limiter: MakeLimiter
) -> AsyncIterator[RedisRateLimiter]:
    metrics = RateLimitMetrics(CollectorRegistry())
    beat_client = make_redis(private_redis.url, SETTINGS)
    tracker = InstanceTracker(redis=beat_client, interval_s=1, window_s=5, metrics=metrics)
    lim = make_limiter(SETTINGS, url=private_redis.url, metrics=metrics, instances=tracker)
    yield lim
    await lim.aclose()  # before its heartbeat's client goes (it leaves the set on close)
    await beat_client.aclose()


class TestRedisStopped:
    async def test_each_policy_behaves_as_configured_then_recovers(
        self, private_redis: EmbeddedRedis, limiter: RedisRateLimiter
    ) -> None:
        reg = limiter.metrics.registry
        assert limiter.instances is not None
        # Two live gateways: this one and another that heartbeats into the same set.
        other = InstanceTracker(
            redis=make_redis(private_redis.url, SETTINGS), interval_s=1, window_s=5
        )
        await other.beat()
        assert await limiter.instances.beat() == 2
        assert (await limiter.hit("l", "ip:1")).allowed  # Redis works: 1 of 4 used there

        private_redis.stop()

        # open: through, uncounted (no headers), and counted as such in the metrics.
        d, took = await timed(limiter.hit("o", "ip:1"))
        assert d.allowed
        assert d.headers == ()
        assert took < BOUND_S
        assert limiter.degraded
        assert (
            sample(reg, "boxoffice_ratelimit_decisions_total", policy="o", outcome="fail_open") == 1
        )
        assert sample(reg, "boxoffice_ratelimit_degraded") == 1

        # closed: 503 with a Retry-After.
        d, took = await timed(limiter.hit("c", "ip:1"))
        assert not d.allowed
        assert d.status == 503
        assert d.retry_after >= 1
        assert took < BOUND_S

        # local: this gateway's share of the policy is burst 4 / 2 gateways = 2.
        got = [await limiter.hit("l", "ip:1") for _ in range(3)]
        assert [d.allowed for d in got] == [True, True, False]
        assert got[2].status == 429
        assert got[2].retry_after >= 1
        assert dict(got[0].headers)[b"ratelimit-limit"] == b"2"
        assert (await limiter.hit("l", "ip:2")).allowed  # another subject has its own share
        assert (
            sample(reg, "boxoffice_ratelimit_decisions_total", policy="l", outcome="local_limited")
            == 1
        )
        assert redis_errors(reg) >= 1

        # The heartbeat keeps failing quietly; the last count is kept.
        with pytest.raises(RedisConnectionError):
            await limiter.instances.beat()
        assert limiter.instances.live == 2

        private_redis.start()
        await asyncio.sleep(COOLDOWN_S + 0.05)
        d = await limiter.hit("l", "ip:1")
        # Back on Redis by itself (this private server keeps no data across a restart, so
        # the subject starts afresh there: 3 of 4 left, not the local share's numbers).
        assert not limiter.degraded
        assert d.allowed
        assert dict(d.headers)[b"ratelimit-remaining"] == b"3"
        assert await limiter._redis.exists(keys.rate_limit("l", "ip:1"))
        assert sample(reg, "boxoffice_ratelimit_degraded") == 0
        assert (
            sample(reg, "boxoffice_ratelimit_decisions_total", policy="l", outcome="allowed") == 2
        )
        await other._redis.aclose()

    async def test_cooldown_skips_redis_until_it_is_over(
        self, private_redis: EmbeddedRedis, limiter: RedisRateLimiter
    ) -> None:
        private_redis.stop()
        await limiter.hit("o", "ip:1")
        reg = limiter.metrics.registry
        errors_after_first = redis_errors(reg)
        assert errors_after_first == 1
        for _ in range(50):
            await limiter.hit("o", "ip:1")
        # No further attempts during the cool-down.
        assert redis_errors(reg) == errors_after_first
        await asyncio.sleep(COOLDOWN_S + 0.05)
        await limiter.hit("o", "ip:1")  # one probe, fails again
        assert redis_errors(reg) == errors_after_first + 1


class _SilentServer:
    """Accepts TCP connections and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        while await reader.read(65536):
            pass

    def close(self) -> None:
        for w in self._writers:
            w.close()


class TestRedisHangs:
    async def test_bounded_wait_and_a_single_probe(self, make_limiter: MakeLimiter) -> None:
        silent = _SilentServer()
        server = await asyncio.start_server(silent.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        lim = make_limiter(SETTINGS, url=f"redis://127.0.0.1:{port}/0")
        try:
            d, took = await timed(lim.hit("c", "ip:1"))
            assert d.status == 503
            assert TIMEOUT_S * 0.9 <= took < BOUND_S
            # During the cool-down: no wait at all.
            d, took = await timed(lim.hit("l", "ip:1"))
            assert d.allowed
            assert took < 0.01
            await asyncio.sleep(COOLDOWN_S + 0.05)
            before = silent.accepted
            # Many requests at once after the cool-down: one probes (and waits), the rest
            # use the failure mode at once.
            results = await asyncio.gather(*(timed(lim.hit("l", f"ip:{i}")) for i in range(20)))
            waits = sorted(t for _, t in results)
            assert waits[-1] < BOUND_S
            assert waits[-2] < 0.02
            assert silent.accepted - before <= 1
            assert all(d.allowed for d, _ in results)
        finally:
            silent.close()
            server.close()
