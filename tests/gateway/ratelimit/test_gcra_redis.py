"""The GCRA script against a real Redis: exactness, refill, independence of keys, expiry,
one round trip, Cluster-safe keys, NOSCRIPT recovery."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from gateway.ratelimit import scripts
from gateway.ratelimit.policies import RateLimitSettings
from shared import keys
from tests.fixtures.redis_cluster import all_keys
from tests.fixtures.services import EmbeddedRedis
from tests.gateway.ratelimit.conftest import MakeLimiter

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]


def settings(**policies: dict[str, Any]) -> RateLimitSettings:
    # These tests are about the algorithm in Redis: a generous bound keeps a loaded CI
    # machine from tripping the failure mode (test_failure_modes.py covers that).
    return RateLimitSettings.model_validate({"policies": policies, "redis_timeout_s": 2.0})


def header(decision: Any, name: bytes) -> int:
    return int(dict(decision.headers)[name])


class TestExactness:
    async def test_burst_admitted_then_refused(
        self, make_limiter: MakeLimiter, redis_client: aioredis.Redis
    ) -> None:
        # One request per 10 s: nothing refills while the burst is spent.
        lim = make_limiter(settings(t={"rate": 1, "period_s": 10, "burst": 5}))
        got = [await lim.hit("t", "user:1") for _ in range(7)]
        assert [d.allowed for d in got] == [True] * 5 + [False, False]
        assert [header(d, b"ratelimit-remaining") for d in got] == [4, 3, 2, 1, 0, 0, 0]
        assert all(header(d, b"ratelimit-limit") == 5 for d in got)
        # Refused: the next slot is one emission interval (10 s) away; full rest in 50 s.
        assert got[5].retry_after == 10
        assert 49 <= header(got[5], b"ratelimit-reset") <= 50
        assert got[5].status == 429

    async def test_refill_after_one_interval(self, redis_client: aioredis.Redis) -> None:
        # 10 per second: one slot every 100 ms.
        # The script answers the reset in µs, negated when refused (gcra.lua).
        script = scripts.gcra(redis_client)
        key = keys.rate_limit("t", "user:refill")
        results = [await script(keys=[key], args=[100_000, 3]) for _ in range(4)]
        assert [r > 0 for r in results] == [True, True, True, False]
        # Admitted from rest: the k-th booked k intervals ahead.
        assert 0 < results[0] <= 100_000 < results[1] <= 200_000 < results[2] <= 300_000
        retry_us = -results[3] + 100_000 - 300_000  # reset + interval - interval * burst
        assert 90_000 < retry_us <= 100_000
        await asyncio.sleep(retry_us / 1e6 - 0.02)
        assert await script(keys=[key], args=[100_000, 3]) < 0  # not yet
        await asyncio.sleep(0.03)
        ok = await script(keys=[key], args=[100_000, 3])
        assert ok > 0  # exactly one slot came back
        assert await script(keys=[key], args=[100_000, 3]) < 0

    async def test_rate_plus_burst_within_one_window(
        self, make_limiter: MakeLimiter, redis_client: aioredis.Redis
    ) -> None:
        # N = 50 per second plus a burst of 5: over one second, 55 admitted (±1 for the
        # edges), however fast the requests come. The window is what Redis saw: between
        # the end of the first request and the start of the last one at least, between
        # the start of the first and the end of the last at most.
        lim = make_limiter(settings(t={"rate": 50, "burst": 5}))
        spans: list[float] = []
        # Every try must count right; one of them must have bounds tight enough to mean
        # something (a stall of the loaded machine around the first or last request
        # widens them, which says nothing about the limiter).
        for attempt in range(3):
            subject = f"user:window-{attempt}"
            allowed = 0
            first_start = time.monotonic()
            allowed += (await lim.hit("t", subject)).allowed
            first_end = time.monotonic()
            while True:
                last_start = time.monotonic()
                allowed += (await lim.hit("t", subject)).allowed
                last_end = time.monotonic()
                if last_end - first_start >= 1.0:
                    break
            low = 5 + 50 * (last_start - first_end)
            high = 5 + 50 * (last_end - first_start)
            assert low - 1 <= allowed <= high + 1, (allowed, low, high)
            spans.append(high - low)
            if high - low < 10:
                break
        assert min(spans) < 10, spans

    async def test_other_subjects_and_policies_are_unaffected(
        self, make_limiter: MakeLimiter, redis_client: aioredis.Redis
    ) -> None:
        lim = make_limiter(
            settings(
                a={"rate": 1, "period_s": 10, "burst": 2}, b={"rate": 1, "period_s": 10, "burst": 2}
            ),
        )
        assert [(await lim.hit("a", "ip:1")).allowed for _ in range(3)] == [True, True, False]
        assert (await lim.hit("a", "ip:2")).allowed
        assert (await lim.hit("b", "ip:1")).allowed
        assert (await lim.hit("a", "user:1")).allowed

    async def test_state_is_one_key_that_expires_at_rest(
        self, make_limiter: MakeLimiter, redis_client: aioredis.Redis
    ) -> None:
        lim = make_limiter(settings(t={"rate": 1, "period_s": 2, "burst": 3}))
        for _ in range(3):
            await lim.hit("t", "ip:9")
        names = await all_keys(redis_client)
        assert names == [keys.rate_limit("t", "ip:9")]
        # Three slots of 2 s are booked: the key lives until the subject is at rest.
        assert 5_000 < await redis_client.pttl(names[0]) <= 6_000
        # The TAT is stored as an exact integer of server microseconds (a number passed to
        # redis.call is not rounded to 14 digits as Lua's tostring would).
        stored = await redis_client.get(names[0])
        seconds, micros = await redis_client.time()
        assert isinstance(stored, str)
        assert stored.isdigit()
        assert 5_000_000 < int(stored) - (seconds * 1_000_000 + micros) <= 6_000_000

    async def test_concurrent_hits_never_exceed_the_burst(
        self, make_limiter: MakeLimiter, redis_client: aioredis.Redis
    ) -> None:
        s = settings(t={"rate": 1, "period_s": 60, "burst": 25}).model_copy(
            update={"redis_timeout_s": 2.0}
        )
        lim = make_limiter(s)
        # Loaded first, as start_rate_limiter does: else each of the first callers on
        # redis-py loads it by itself (on every master of a cluster), which a loaded machine
        # can stretch past the bound.
        await lim.load()
        # More in flight than redis-py's pool has connections: they wait, they do not fail.
        got = await asyncio.gather(*(lim.hit("t", "user:race") for _ in range(300)))
        assert not lim.degraded
        assert sum(d.allowed for d in got) == 25


class TestClusterSafety:
    async def test_every_script_call_touches_one_hash_tag(
        self, make_limiter: MakeLimiter, redis_client: aioredis.Redis
    ) -> None:
        lim = make_limiter(RateLimitSettings())
        calls: list[list[str]] = []
        real = lim._gcra

        class Recording:
            def prepare(self, key: str, interval_us: int, burst: int) -> object:
                return key, real.prepare(key, interval_us, burst)

            async def __call__(self, call: tuple[str, object]) -> int:
                calls.append([call[0]])  # the script's KEYS
                return await real(call[1])

            async def reload(self, call: tuple[str, object]) -> int:
                calls.append([call[0]])
                return await real.reload(call[1])

            def reset(self) -> None:
                real.reset()

            def shard(self, call: tuple[str, object]) -> object:
                return real.shard(call[1])

        lim._gcra = Recording()
        for group in ["browse", "queue", "auth", "ticketing-write", "nope"]:
            for subject in ["user:abc", "ip:203.0.113.5", "ip:2001:db8::1", "ip:{evil}"]:
                await lim.hit(group, subject)
        assert len(calls) == 20
        for call in calls:
            tags = [re.search(r"\{([^}]+)\}", k) for k in call]
            assert all(t is not None for t in tags), call
            assert len({key_slot(k.encode()) for k in call}) == 1
            # The subject (user-supplied text) is hashed, so it cannot break the tag.
            assert all(k.count("{") == 1 and k.count("}") == 1 for k in call)

    def test_scripts_touch_only_the_keys_they_are_given(self) -> None:
        for name in ("gcra", "heartbeat"):
            src = scripts.source(name)
            for cmd, first in re.findall(r"redis\.call\('(\w+)'(?:,\s*([^,)]+))?", src):
                assert cmd == "TIME" or first.startswith("KEYS["), (name, cmd, first)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this module's own: SCRIPT FLUSH is allowed here, never on the shared one."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
async def private_client(private_redis: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(private_redis.url)
    await client.flushdb()
    yield client
    await client.aclose()


def command_calls(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


class TestScriptLoading:
    async def test_one_evalsha_per_hit(
        self,
        make_limiter: MakeLimiter,
        private_redis: EmbeddedRedis,
        private_client: aioredis.Redis,
    ) -> None:
        lim = make_limiter(url=private_redis.url, settings=RateLimitSettings())
        await lim.load()
        await lim.hit("browse", "ip:warm")  # connection set-up commands happen here
        with redis.Redis.from_url(private_redis.url) as stats:
            before = command_calls(stats)
            for i in range(50):
                await lim.hit("browse", f"ip:{i}")
            after = command_calls(stats)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        # INFO itself is the one extra; inside the script: TIME, GET, SET per call.
        issued = {k: v for k, v in delta.items() if v and k not in ("time", "get", "set")}
        assert issued == {"evalsha": 50, "info": 1}

    async def test_noscript_after_script_flush_recovers(
        self,
        make_limiter: MakeLimiter,
        private_redis: EmbeddedRedis,
        private_client: aioredis.Redis,
    ) -> None:
        lim = make_limiter(
            url=private_redis.url, settings=settings(t={"rate": 1, "period_s": 10, "burst": 3})
        )
        sha = hashlib.sha1(scripts.source("gcra").encode()).hexdigest()
        assert (await lim.hit("t", "ip:1")).allowed
        await private_client.script_flush()
        assert not (await private_client.script_exists(sha))[0]
        got = [await lim.hit("t", "ip:1") for _ in range(3)]
        # The state survived the flush (only the script went): 2 left of 3, then refused.
        assert [d.allowed for d in got] == [True, True, False]
        assert not lim.degraded
        assert (await private_client.script_exists(sha))[0]


class TestPolicyChange:
    async def test_stricter_policy_applies_at_once_without_serving_out_the_old_one(
        self, redis_client: aioredis.Redis
    ) -> None:
        script = scripts.gcra(redis_client)
        key = keys.rate_limit("t", "user:change")
        # Old policy: one per minute, burst 5 — spent: the TAT is five minutes ahead.
        for _ in range(5):
            assert await script(keys=[key], args=[60_000_000, 5]) > 0
        # New policy: ten per second, burst 2. Not five minutes: one interval (100 ms).
        refused = await script(keys=[key], args=[100_000, 2])
        assert refused < 0
        assert -refused <= 200_000  # at rest within the new policy's tolerance
        assert -refused + 100_000 - 200_000 <= 100_000  # retry after
        await asyncio.sleep(0.11)
        assert await script(keys=[key], args=[100_000, 2]) > 0
