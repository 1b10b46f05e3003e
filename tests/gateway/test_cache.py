"""gateway/cache.py: micro-caching with request coalescing, under real asyncio concurrency."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cache import CachedResponse, CacheStatus, MicroCache

JSON = [(b"content-type", b"application/json")]


class Clock:
    """A settable clock for TTL tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """Counts calls; each answer's body names the call number, after a small delay so that
    concurrent callers really overlap."""

    def __init__(
        self, *, headers: list[tuple[bytes, bytes]] | None = None, status: int = 200
    ) -> None:
        self.calls = 0
        self.headers = headers if headers is not None else JSON
        self.status = status
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> CachedResponse:
        self.calls += 1
        n = self.calls
        await asyncio.sleep(0.02)
        await self.release.wait()
        return CachedResponse(self.status, list(self.headers), f'{{"call": {n}}}'.encode())


def make(clock: Clock | None = None, **kw: object) -> MicroCache:
    return MicroCache({"browse": 1.0}, clock=clock or Clock(), **kw)  # type: ignore[arg-type]


KEY_ARGS = ("browse", "GET", b"/api/performances/1", [(b"accept", b"application/json")])


class TestCoalescing:
    async def test_64_concurrent_callers_one_upstream_request(self) -> None:
        cache, upstream = make(), Upstream()
        key = cache.key_for(*KEY_ARGS)
        results = await asyncio.gather(*(cache.fetch("browse", key, upstream) for _ in range(64)))
        assert upstream.calls == 1
        assert {r.body for r, _ in results} == {b'{"call": 1}'}
        statuses = [s for _, s in results]
        assert statuses.count(CacheStatus.MISS) == 1
        assert statuses.count(CacheStatus.COALESCED) == 63

    async def test_hit_within_ttl_then_refetch_after(self) -> None:
        clock = Clock()
        cache, upstream = make(clock), Upstream()
        key = cache.key_for(*KEY_ARGS)
        await cache.fetch("browse", key, upstream)
        clock.now += 0.9
        response, status = await cache.fetch("browse", key, upstream)
        assert status is CacheStatus.HIT
        assert (b"age", b"0") in response.headers
        assert upstream.calls == 1
        clock.now += 0.2  # 1.1 s after storing: expired
        _, status = await cache.fetch("browse", key, upstream)
        assert status is CacheStatus.MISS
        assert upstream.calls == 2

    async def test_one_upstream_request_per_ttl_under_sustained_load(self) -> None:
        clock = Clock()
        cache, upstream = make(clock), Upstream()
        key = cache.key_for(*KEY_ARGS)
        for _ in range(5):  # five TTL periods of 64 concurrent callers each
            await asyncio.gather(*(cache.fetch("browse", key, upstream) for _ in range(64)))
            clock.now += 1.0
        assert upstream.calls == 5

    async def test_upstream_failure_is_shared_not_retried_by_everyone(self) -> None:
        cache = make()
        calls = 0

        async def failing() -> CachedResponse:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.02)
            raise ConnectionError("upstream down")

        key = cache.key_for(*KEY_ARGS)
        results = await asyncio.gather(
            *(cache.fetch("browse", key, failing) for _ in range(10)), return_exceptions=True
        )
        assert calls == 1
        assert all(isinstance(r, ConnectionError) for r in results)
        assert len(cache) == 0
        # Nothing was cached and the flight is gone: the next request tries again.
        upstream = Upstream()
        _, status = await cache.fetch("browse", key, upstream)
        assert (status, upstream.calls) == (CacheStatus.MISS, 1)

    async def test_leader_cancelled_waiters_still_answered(self) -> None:
        cache, upstream = make(), Upstream()
        upstream.release.clear()
        key = cache.key_for(*KEY_ARGS)
        leader = asyncio.create_task(cache.fetch("browse", key, upstream))
        await asyncio.sleep(0.005)
        waiters = [asyncio.create_task(cache.fetch("browse", key, upstream)) for _ in range(5)]
        await asyncio.sleep(0.005)
        leader.cancel()  # the first client went away
        upstream.release.set()
        done = await asyncio.gather(*waiters)
        assert {s for _, s in done} == {CacheStatus.COALESCED}
        assert upstream.calls == 1
        assert leader.cancelled()
        assert len(cache) == 1


class TestNeverSharedWhenPersonal:
    @pytest.mark.parametrize(
        "header",
        [
            (b"authorization", b"Bearer abc"),
            (b"cookie", b"sid=1"),
            (b"x-admission-token", b"t"),
            (b"x-user-id", b"u_1"),
        ],
    )
    def test_requests_with_identity_bypass(self, header: tuple[bytes, bytes]) -> None:
        cache = make()
        assert cache.key_for("browse", "GET", b"/api/x", [header]) is None

    def test_only_configured_groups_and_get(self) -> None:
        cache = make()
        assert cache.key_for("ticketing-read", "GET", b"/api/x", []) is None
        assert cache.key_for("browse", "POST", b"/api/x", []) is None
        assert cache.key_for("browse", "HEAD", b"/api/x", []) is None

    def test_key_separates_query_and_representation(self) -> None:
        cache = make()
        a = cache.key_for("browse", "GET", b"/api/p?offset=0", [])
        b = cache.key_for("browse", "GET", b"/api/p?offset=20", [])
        gz = cache.key_for("browse", "GET", b"/api/p?offset=0", [(b"accept-encoding", b"gzip")])
        assert len({a, b, gz}) == 3

    async def test_bypassed_requests_go_upstream_each_time(self) -> None:
        cache, upstream = make(), Upstream()
        results = await asyncio.gather(*(cache.fetch("browse", None, upstream) for _ in range(8)))
        assert upstream.calls == 8
        assert {s for _, s in results} == {CacheStatus.BYPASS}

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"cache-control", b"no-store")],
            [(b"cache-control", b"private, max-age=60")],
            [(b"cache-control", b"no-cache")],
            [(b"cache-control", b"max-age=0")],
            [(b"set-cookie", b"sid=1")],
            [(b"vary", b"Authorization")],
            [(b"vary", b"*")],
        ],
    )
    async def test_personal_or_unstorable_answers_are_not_shared(
        self, headers: list[tuple[bytes, bytes]]
    ) -> None:
        cache, upstream = make(), Upstream(headers=JSON + headers)
        key = cache.key_for(*KEY_ARGS)
        results = await asyncio.gather(*(cache.fetch("browse", key, upstream) for _ in range(16)))
        # Every caller got its own upstream answer: nothing stored, nothing handed over.
        assert upstream.calls == 16
        assert len({r.body for r, _ in results}) == 16
        assert len(cache) == 0

    @pytest.mark.parametrize("status", [500, 502, 503, 429, 401])
    async def test_errors_are_not_cached(self, status: int) -> None:
        cache, upstream = make(), Upstream(status=status)
        key = cache.key_for(*KEY_ARGS)
        await cache.fetch("browse", key, upstream)
        await cache.fetch("browse", key, upstream)
        assert upstream.calls == 2


class TestStorage:
    async def test_vary_on_key_headers_is_stored(self) -> None:
        cache, upstream = make(), Upstream(headers=JSON + [(b"vary", b"Accept-Encoding")])
        key = cache.key_for(*KEY_ARGS)
        await cache.fetch("browse", key, upstream)
        _, status = await cache.fetch("browse", key, upstream)
        assert status is CacheStatus.HIT

    async def test_shorter_s_maxage_shortens_ttl(self) -> None:
        clock = Clock()
        cache = MicroCache({"browse": 5.0}, clock=clock)
        upstream = Upstream(headers=JSON + [(b"cache-control", b"public, s-maxage=1")])
        key = cache.key_for(*KEY_ARGS)
        await cache.fetch("browse", key, upstream)
        clock.now += 1.5
        _, status = await cache.fetch("browse", key, upstream)
        assert status is CacheStatus.MISS

    async def test_per_request_headers_not_replayed(self) -> None:
        upstream = Upstream(headers=JSON + [(b"x-request-id", b"first"), (b"date", b"x")])
        cache = make()
        key = cache.key_for(*KEY_ARGS)
        shared = await asyncio.gather(*(cache.fetch("browse", key, upstream) for _ in range(4)))
        hit, status = await cache.fetch("browse", key, upstream)
        assert status is CacheStatus.HIT
        # Neither the requests sharing the leader's flight nor later hits see its request id.
        for response in [r for r, _ in shared] + [hit]:
            names = [n for n, _ in response.headers]
            assert b"x-request-id" not in names
            assert b"date" not in names
            assert b"content-type" in names

    async def test_404_is_cached_briefly(self) -> None:
        cache, upstream = make(), Upstream(status=404)
        key = cache.key_for(*KEY_ARGS)
        await cache.fetch("browse", key, upstream)
        _, status = await cache.fetch("browse", key, upstream)
        assert status is CacheStatus.HIT

    async def test_big_bodies_not_stored(self) -> None:
        cache, upstream = make(max_body_bytes=4), Upstream()
        key = cache.key_for(*KEY_ARGS)
        await cache.fetch("browse", key, upstream)
        assert len(cache) == 0

    async def test_lru_bound(self) -> None:
        cache = make(max_entries=2)
        keys = [cache.key_for("browse", "GET", f"/api/p/{i}".encode(), []) or b"" for i in range(3)]
        await cache.fetch("browse", keys[0], Upstream())
        await cache.fetch("browse", keys[1], Upstream())
        assert cache.lookup(keys[0]) is not None  # touch 0: 1 is now least recently used
        await cache.fetch("browse", keys[2], Upstream())
        assert len(cache) == 2
        assert cache.lookup(keys[1]) is None
        assert cache.lookup(keys[0]) is not None
        assert cache.stats.evicted == 1
