"""The distributed rate limiter: one atomic ``EVALSHA`` of ``gcra.lua`` per request, and a
per-policy decision (open / closed / local) when Redis cannot answer in time.

Redis health is a small state machine so a dead or hung Redis costs one bounded wait per
cool-down rather than one per request: after a failure every request uses its policy's
failure mode for ``redis_cooldown_s``; then a single request probes Redis (the others keep
using the failure mode until it returns) and the first success restores normal operation.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.ratelimit import metrics as m
from gateway.ratelimit import scripts
from gateway.ratelimit.instances import InstanceTracker
from gateway.ratelimit.local import LocalLimiter
from gateway.ratelimit.policies import FailureMode, RateLimitSettings
from gateway.ratelimit.verdicts import (
    ALLOWED_UNCOUNTED,
    H_LIMIT,
    LimitDecision,
    Rule,
    seconds_up,
    verdict,
)
from shared import keys
from svckit.redis_client import (
    RedisMode,
    RedisOptions,
    make_async_redis,
    make_pipelined,
    resolve,
)
from svckit.redis_pipeline import AnyPipelined, PipelinedScript, bulk, slot_of

log = logging.getLogger("boxoffice.gateway.ratelimit")

# Bound of the per-policy call cache; a full cache is emptied and fills again.
_MAX_CALLS = 8192  # subjects with their script call prepared
_MAX_SHARDS = 64  # failure states kept (masters come and go with failovers)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    return "error"


class GcraCall(Protocol):
    """Runs ``gcra.lua`` for one subject; the reply is the script's one integer.

    :meth:`prepare` turns the script's arguments into what :meth:`__call__` takes (the
    limiter keeps it per subject). ``__call__`` may answer ``NOSCRIPT`` (the server lost its
    scripts: a ``SCRIPT FLUSH``, a restart, a failover); :meth:`reload` then runs the script
    by its text, which caches it on the server again."""

    def prepare(self, key: str, interval_us: int, burst: int) -> object: ...

    def __call__(self, call: Any) -> Awaitable[int]: ...

    def reload(self, call: Any) -> Awaitable[int]: ...

    def reset(self) -> None: ...

    def shard(self, call: Any) -> object:
        """Which Redis server answers ``call`` (one per cluster master): failures are
        tracked per shard, so one master down does not send every subject to the failure
        modes."""
        ...


class PipelinedGcra:
    """``EVALSHA`` on the auto-pipelined client; ``EVAL`` for :meth:`reload`.

    A prepared call is the whole ``EVALSHA`` command in RESP, and calling it is a plain
    function returning the reply's future, not a coroutine: on the hot path the request
    awaits the future itself (hiredis already gives the integer)."""

    def __init__(self, client: AnyPipelined) -> None:
        self._client = client
        self._script = PipelinedScript(scripts.source("gcra"), 1)

    def prepare(self, key: str, interval_us: int, burst: int) -> tuple[bytes, int]:
        """The ``EVALSHA`` command for these arguments, and its key's cluster slot."""
        return self._script.command(bulk(key, interval_us, burst), 3), slot_of(key)

    def __call__(self, call: tuple[bytes, int]) -> Awaitable[int]:
        return self._client.send(*call)

    def reload(self, call: tuple[bytes, int]) -> Awaitable[int]:
        return self._client.send(self._script.as_eval(call[0]), call[1])

    def reset(self) -> None:
        self._client.reset()

    def shard(self, call: tuple[bytes, int]) -> object:
        return self._client.shard(call[1])


class RedisPyGcra:
    """The same through redis-py (``AsyncScript``: one ``EVALSHA``, reload on NOSCRIPT by
    itself)."""

    def __init__(self, redis: Redis) -> None:
        self._script = scripts.gcra(redis)

    def prepare(self, key: str, interval_us: int, burst: int) -> tuple[list[str], list[int]]:
        """``keys`` and ``args`` for ``AsyncScript``."""
        return [key], [interval_us, burst]

    async def __call__(self, call: tuple[list[str], list[int]]) -> int:
        # Bounded by the client's own timeouts (make_redis: pool wait, connect and read
        # each redis_timeout_s), not by cancelling: redis-py can leak the socket of a
        # connect that is cancelled half-way.
        return int(await self._script(keys=call[0], args=call[1]))

    reload = __call__  # AsyncScript reloads by itself

    def reset(self) -> None:
        """Nothing to do: redis-py drops a connection whose command was cancelled."""

    def shard(self, call: object) -> object:
        """One shard: redis-py's cluster client routes by itself, out of sight."""
        return None


@dataclass(slots=True)
class _Health:
    """One shard's failure state: degraded until a probe after ``retry_at`` succeeds."""

    degraded: bool = False
    retry_at: float = 0.0
    probing: bool = False


class RedisRateLimiter:
    """``hit(group, subject)`` for the gateway's front layer (``RateLimiter`` protocol)."""

    def __init__(
        self,
        *,
        redis: Redis,
        settings: RateLimitSettings,
        metrics: m.RateLimitMetrics | None = None,
        instances: InstanceTracker | None = None,
        clock: Callable[[], float] = time.monotonic,
        owns_redis: Redis | None = None,
        pipelined: AnyPipelined | None = None,
    ) -> None:
        self.settings = settings
        self._owned_redis = owns_redis
        self.metrics = metrics or m.RateLimitMetrics()
        self.instances = instances
        self.local = LocalLimiter(clock=clock)
        self._redis = redis
        # The hot path: the auto-pipelined client when there is one, else redis-py.
        self._pipelined = pipelined
        self._gcra: GcraCall = (
            PipelinedGcra(pipelined) if pipelined is not None else RedisPyGcra(redis)
        )
        self._clock = clock
        self._rules: dict[str, Rule] = {}
        # Failure state per shard (a cluster master; one for a single server).
        self._health: dict[object, _Health] = {}
        self._closed = False
        self._closed_retry_after = max(1, math.ceil(settings.redis_cooldown_s))

    @property
    def degraded(self) -> bool:
        """Whether Redis (any shard of it) is currently considered unavailable."""
        return any(h.degraded for h in self._health.values())

    def _health_of(self, call: object) -> _Health:
        shard = self._gcra.shard(call)
        health = self._health.get(shard)
        if health is None:
            if len(self._health) > _MAX_SHARDS:  # shards of a map long gone
                self._health = {k: h for k, h in self._health.items() if h.degraded}
            health = self._health[shard] = _Health()
        return health

    def _rule(self, group: str) -> Rule:
        rule = self._rules.get(group)
        if rule is None:
            name, policy = self.settings.policy_for(group)
            rule = self._rules[group] = Rule(name, policy, self.metrics.counts(name))
        return rule

    def _prepare(self, rule: Rule, subject: str) -> object:
        calls = rule.calls
        if len(calls) >= _MAX_CALLS:
            calls.clear()
        call = calls[subject] = self._gcra.prepare(
            keys.rate_limit(rule.name, subject), rule.interval_us, rule.burst
        )
        return call

    async def aclose(self) -> None:
        """Stop the heartbeat, unregister the metrics, close the client if it is ours
        (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.instances is not None:
            await self.instances.stop()
        self.metrics.unregister()
        if self._pipelined is not None:
            await self._pipelined.aclose()
        if self._owned_redis is not None:
            await self._owned_redis.aclose()

    async def load(self) -> None:
        """Load the script into Redis now (it is reloaded by itself after a flush)."""
        await self._redis.script_load(scripts.source("gcra"))

    async def hit(self, group: str, subject: str) -> LimitDecision:
        """Count one request of ``subject`` (``user:<id>`` / ``ip:<addr>``) in ``group``."""
        # Every request comes through here: the common case is a few lookups and one
        # awaited reply (docs/benchmarks-history.md, "the limiter's cost").
        rule = self._rules.get(group) or self._rule(group)
        call = rule.calls.get(subject)
        if call is None:
            call = self._prepare(rule, subject)
        health = self._health_of(call)
        probe = False
        if health.degraded:
            if health.probing or self._clock() < health.retry_at:
                return self._fallback(rule, subject)
            probe = health.probing = True
        try:
            # Bounded by the backend (redis_timeout_s): never a hang.
            try:
                reset_us = await self._gcra(call)
            except NoScriptError:
                reset_us = await self._gcra.reload(call)
        except ResponseError as e:
            # Redis answered (a script error, a wrong key type, OOM): this call falls back,
            # but Redis is not down, so nobody else is sent to the failure modes.
            self.metrics.redis_errors.labels("error").inc()
            log.warning("rate limiter: Redis answered an error: %s", e)
            return self._fallback(rule, subject)
        except Exception as e:  # any failure of the Redis call is a failure-mode decision
            if isinstance(e, TimeoutError):
                self._gcra.reset()  # Redis may be hung: start over on a new connection
            self._redis_failed(e, health)
            return self._fallback(rule, subject)
        finally:
            if probe:
                health.probing = False
        if health.degraded:
            self._redis_recovered(health)
        return rule.decide(reset_us)

    def _fallback(self, rule: Rule, subject: str) -> LimitDecision:
        mode = rule.policy.failure_mode
        if mode is FailureMode.OPEN:
            rule.counts.fail_open += 1
            return ALLOWED_UNCOUNTED
        if mode is FailureMode.CLOSED:
            rule.counts.fail_closed += 1
            return LimitDecision(False, retry_after=self._closed_retry_after, status=503)
        live = self.instances.live if self.instances is not None else 1
        share = rule.policy.scaled(live)
        v = self.local.hit(rule.name, subject, share)
        if v.allowed:
            rule.counts.local_allowed += 1
        else:
            rule.counts.local_limited += 1
        # The headers describe the share this instance enforces while degraded.
        return verdict(
            (H_LIMIT, str(share.burst).encode()),
            v.allowed,
            v.remaining,
            max(1, seconds_up(v.retry_after_us)),
            seconds_up(v.reset_us),
        )

    def _redis_failed(self, exc: BaseException, health: _Health) -> None:
        self.metrics.redis_errors.labels(_error_kind(exc)).inc()
        health.retry_at = self._clock() + self.settings.redis_cooldown_s
        if not health.degraded:
            health.degraded = True
            self.metrics.degraded.set(1)
            modes = {n: p.failure_mode.value for n, p in self.settings.policies.items()}
            log.warning(
                "rate limiter: Redis unavailable (%s: %s); using failure modes %s",
                type(exc).__name__,
                exc,
                modes,
            )

    def _redis_recovered(self, health: _Health) -> None:
        health.degraded = False
        self.metrics.degraded.set(int(self.degraded))
        log.warning("rate limiter: Redis is back; limits are enforced in Redis again")


def make_redis(url: str, settings: RateLimitSettings, mode: RedisMode | None = None) -> Redis:
    """The limiter's own Redis client (``svckit/redis_client.py``), with the limiter's
    budget: ``redis_timeout_s`` for pool wait, connect and read (the failure mode is the
    retry), and a blocking pool of ``redis_max_connections`` (a full pool must wait, not
    look like an outage)."""
    return make_async_redis(_options(url, settings, mode))


def _options(url: str, settings: RateLimitSettings, mode: RedisMode | None) -> RedisOptions:
    return resolve(
        url,
        mode=mode,
        timeout_s=settings.redis_timeout_s,
        max_connections=settings.redis_max_connections,
    )


async def start_rate_limiter(
    *,
    settings: RateLimitSettings,
    redis_url: str | None = None,
    redis: Redis | None = None,
    registry: CollectorRegistry | None = None,
    redis_mode: RedisMode | None = None,
) -> RedisRateLimiter:
    """A limiter with its instance heartbeat running, for the app's lifespan; stop it with
    ``await limiter.aclose()``.

    Give ``redis_url`` (the limiter then owns a client from :func:`make_redis` and closes
    it) or an existing ``redis`` client. Startup never fails because of Redis: the script is
    loaded on first use if it cannot be loaded now, and the live-instance count stays 1
    until a heartbeat gets through."""
    owned: Redis | None = None
    if redis is None:
        if redis_url is None:
            raise ValueError("start_rate_limiter needs redis_url or redis")
        redis = owned = make_redis(redis_url, settings, redis_mode)
    metrics = m.RateLimitMetrics(registry)
    tracker = InstanceTracker(
        redis=redis,
        interval_s=settings.heartbeat_interval_s,
        window_s=settings.instance_window_s,
        metrics=metrics,
    )
    limiter = RedisRateLimiter(
        redis=redis,
        settings=settings,
        metrics=metrics,
        instances=tracker,
        owns_redis=owned,
        pipelined=(
            make_pipelined(
                _options(redis_url, settings, redis_mode),
                window_s=settings.redis_batch_window_ms / 1000,
            )
            if redis_url
            else None
        ),
    )
    with suppress(Exception):  # bounded by the client's timeouts
        await limiter.load()
        await tracker.beat()
    tracker.start()
    return limiter


@asynccontextmanager
async def running_rate_limiter(
    *,
    settings: RateLimitSettings,
    redis_url: str | None = None,
    redis: Redis | None = None,
    registry: CollectorRegistry | None = None,
    redis_mode: RedisMode | None = None,
) -> AsyncIterator[RedisRateLimiter]:
    """:func:`start_rate_limiter` as an async context manager."""
    limiter = await start_rate_limiter(
        settings=settings,
        redis_url=redis_url,
        redis=redis,
        registry=registry,
        redis_mode=redis_mode,
    )
    try:
        yield limiter
    finally:
        await limiter.aclose()
