"""The waiting room's scripts against real Redis: order, bounds, races, expiry, sold out."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.queue.runtime import make_queue_redis
from gateway.queue.schemas import QueuePolicy
from gateway.queue.scripts import script_keys
from gateway.queue.service import QueueService, burst_of, estimate_wait_s, member_of
from shared import keys
from shared.tokens import verify_admission_token
from svckit.redis_client import make_pipelined, resolve

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]

SECRET = "svc-test-secret-0123456789abcdef0123456789"
SID = 7


# Every test runs twice: scripts through redis-py, and through the auto-pipelined client the
# gateway uses for redis:// URLs (set by the autouse fixture below).
_pipelined: dict[str, Any] = {"url": None, "clients": []}


@pytest.fixture(autouse=True, params=["redis-py", "pipelined"])
async def script_client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[None]:
    _pipelined["url"] = redis_url if request.param == "pipelined" else None
    yield
    _pipelined["url"] = None
    while _pipelined["clients"]:
        await _pipelined["clients"].pop().aclose()


def make_service(
    client: aioredis.Redis, *, heartbeat_s: float = 30, ttl_s: int = 600
) -> QueueService:
    pipelined = None
    if _pipelined["url"] is not None:
        pipelined = make_pipelined(resolve(_pipelined["url"], timeout_s=5.0))
        _pipelined["clients"].append(pipelined)
    return QueueService(
        redis=client,
        secret=SECRET,
        heartbeat_timeout_s=heartbeat_s,
        admission_ttl_s=ttl_s,
        pipelined=pipelined,
    )


@pytest.fixture
def svc(redis_client: aioredis.Redis) -> QueueService:
    return make_service(redis_client)


async def admitted_users(svc: QueueService, users: list[str]) -> list[str]:
    out = []
    for u in users:
        view = await svc.status(session_id=SID, user_id=u, beat=False)
        if view.state == "admitted":
            out.append(u)
    return out


class TestKeys:
    def test_every_script_key_shares_the_session_hash_tag(self) -> None:
        tags = {k[k.index("{") : k.index("}") + 1] for k in script_keys(42)}
        assert tags == {keys.session_tag(42)}
        assert keys.sold_out_flag(42) in script_keys(42)

    def test_members_are_short_and_distinct(self) -> None:
        members = {member_of(f"u_{i:032x}") for i in range(10_000)}
        assert len(members) == 10_000
        assert {len(m) for m in members} == {12}


class TestJoinStatus:
    async def test_positions_follow_join_order_and_rejoin_keeps_the_place(
        self, svc: QueueService
    ) -> None:
        users = [f"u{i}" for i in range(5)]
        for i, u in enumerate(users):
            view = await svc.join(session_id=SID, user_id=u)
            assert (view.state, view.seq, view.rank) == ("waiting", i + 1, i)
        again = await svc.join(session_id=SID, user_id="u2")
        assert (again.seq, again.rank) == (3, 2)
        await svc.leave(session_id=SID, user_id="u1")
        view = await svc.status(session_id=SID, user_id="u2")
        assert view.rank == 1  # position counts only those still waiting
        assert (await svc.status(session_id=SID, user_id="u1")).state == "none"
        assert (await svc.status(session_id=SID, user_id="never")).state == "none"

    async def test_concurrent_joins_get_distinct_consecutive_places(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        clients = [make_queue_redis(redis_url, timeout_s=5) for _ in range(4)]
        services = [make_service(c) for c in clients]
        users = [f"c{i}" for i in range(120)]
        views = await asyncio.gather(
            *(services[i % 4].join(session_id=SID, user_id=u) for i, u in enumerate(users * 2))
        )
        for c in clients:
            await c.aclose()
        seq_of: dict[str, set[int]] = {}
        for u, v in zip(users * 2, views, strict=True):
            seq_of.setdefault(u, set()).add(v.seq)
        assert all(len(s) == 1 for s in seq_of.values())  # joining twice kept the place
        assert sorted(next(iter(s)) for s in seq_of.values()) == list(range(1, 121))


class TestAdmission:
    async def test_admission_follows_join_order_exactly(self, svc: QueueService) -> None:
        users = [f"o{i}" for i in range(30)]
        for u in users:
            await svc.join(session_id=SID, user_id=u)
        policy = QueuePolicy(max_active=4, admit_per_second=10_000)
        for start in range(0, 30, 4):
            result = await svc.tick(session_id=SID, policy=policy)
            batch = users[start : start + 4]
            assert result.admitted == len(batch)
            assert await admitted_users(svc, users) == batch
            for u in batch:
                assert await svc.release(session_id=SID, user_id=u)
                await svc.leave(session_id=SID, user_id=u)

    async def test_token_carries_join_order_and_expiry(self, svc: QueueService) -> None:
        await svc.join(session_id=SID, user_id="a")
        await svc.join(session_id=SID, user_id="b")
        policy = QueuePolicy(max_active=10, admit_per_second=1000)
        await svc.tick(session_id=SID, policy=policy)
        view = await svc.status(session_id=SID, user_id="b")
        status = svc.render(view, session_id=SID, user_id="b", policy=policy)
        assert status.status == "admitted"
        assert status.position is None
        assert status.admission_token
        assert status.admission_expires_at
        claims = verify_admission_token(
            status.admission_token, secret=SECRET, user_id="b", session_id=SID
        )
        assert claims.queue_position == 2
        assert claims.expires_at == int(status.admission_expires_at.timestamp())
        assert claims.expires_at - time.time() == pytest.approx(600, abs=3)

    @pytest.mark.slow
    async def test_two_racing_instances_never_exceed_max_active_nor_admit_twice(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        max_active, n_users = 5, 150
        policy = QueuePolicy(max_active=max_active, admit_per_second=2000)
        clients = [make_queue_redis(redis_url, timeout_s=5) for _ in range(3)]
        a, b, joiner = (make_service(c) for c in clients)
        users = [f"r{i}" for i in range(n_users)]
        admitted_log: list[tuple[str, int]] = []  # (user, seq) as first seen admitted
        seen: set[str] = set()
        peak = 0
        stop = asyncio.Event()

        async def admit(s: QueueService) -> None:
            while not stop.is_set():
                await s.tick(session_id=SID, policy=policy)
                await asyncio.sleep(0)

        async def watch() -> None:
            nonlocal peak
            active_key = script_keys(SID)[2]
            while not stop.is_set():
                peak = max(peak, await redis_client.scard(active_key))
                await asyncio.sleep(0)

        async def finish() -> None:
            # Admitted users finish (reservation or leave) after a random short while.
            while len(seen) < n_users:
                for u in users:
                    if u in seen:
                        continue
                    v = await joiner.status(session_id=SID, user_id=u, beat=False)
                    if v.state == "admitted":
                        seen.add(u)
                        admitted_log.append((u, v.seq))
                        await asyncio.sleep(random.random() / 200)
                        if random.random() < 0.5:
                            assert await joiner.release(session_id=SID, user_id=u)
                        else:
                            await joiner.leave(session_id=SID, user_id=u)
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(c) for c in (admit(a), admit(b), watch())]
        await asyncio.gather(*(joiner.join(session_id=SID, user_id=u) for u in users))
        await asyncio.wait_for(finish(), 30)
        stop.set()
        await asyncio.gather(*tasks)
        for c in clients:
            await c.aclose()
        assert 0 < peak <= max_active
        assert len(admitted_log) == n_users == len({u for u, _ in admitted_log})
        meta = await redis_client.hgetall(script_keys(SID)[1])
        assert int(meta["adm"]) == n_users  # nobody admitted twice

    async def test_rate_bound_holds_with_two_instances(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        rate = 20.0
        policy = QueuePolicy(max_active=1000, admit_per_second=rate)
        clients = [make_queue_redis(redis_url, timeout_s=5) for _ in range(2)]
        services = [make_service(c) for c in clients]
        for i in range(60):
            await services[0].join(session_id=SID, user_id=f"t{i}")
        deadline = time.monotonic() + 2.0

        async def loop(s: QueueService) -> None:
            while time.monotonic() < deadline:
                await s.tick(session_id=SID, policy=policy)
                await asyncio.sleep(0.005)

        await asyncio.gather(*(loop(s) for s in services))
        for c in clients:
            await c.aclose()
        times = sorted(int(t) for t in await redis_client.lrange(script_keys(SID)[7], 0, -1))
        burst = burst_of(policy)
        for i, t in enumerate(times):
            in_window = sum(1 for u in times[i:] if u < t + 1000)
            assert in_window <= rate + burst
        # ... and it is not starving either: close to the configured rate overall.
        assert len(times) >= rate * 2 * 0.8


class TestSlotsFree:
    async def test_leave_release_and_expiry_each_free_a_slot_for_the_next_waiter(
        self, redis_client: aioredis.Redis
    ) -> None:
        svc = make_service(redis_client, ttl_s=1)
        policy = QueuePolicy(max_active=1, admit_per_second=1000)
        for u in ("a", "b", "c", "d"):
            await svc.join(session_id=SID, user_id=u)
        await svc.tick(session_id=SID, policy=policy)
        assert await admitted_users(svc, ["a", "b", "c", "d"]) == ["a"]

        await svc.leave(session_id=SID, user_id="a")  # leave
        await svc.tick(session_id=SID, policy=policy)
        assert await admitted_users(svc, ["a", "b", "c", "d"]) == ["b"]

        assert await svc.release(session_id=SID, user_id="b")  # reservation confirmed
        assert not await svc.release(session_id=SID, user_id="b")
        await svc.tick(session_id=SID, policy=policy)
        # b keeps its (still valid) admission, c got the slot.
        assert await admitted_users(svc, ["a", "b", "c", "d"]) == ["b", "c"]

        await asyncio.sleep(2.1)  # admission expiry (ttl 1 s)
        await svc.status(session_id=SID, user_id="d")  # d keeps polling
        result = await svc.tick(session_id=SID, policy=policy)
        assert result.expired_admissions == 1  # c's slot; b had already freed its own
        assert await admitted_users(svc, ["a", "b", "c", "d"]) == ["d"]
        assert (await svc.status(session_id=SID, user_id="c")).state == "expired"
        # An expired user may join again, at the end of the line.
        view = await svc.join(session_id=SID, user_id="c")
        assert (view.state, view.seq) == ("waiting", 5)


class TestHeartbeat:
    async def test_silent_waiters_drop_out_and_do_not_hold_up_the_line(
        self, redis_client: aioredis.Redis
    ) -> None:
        svc = make_service(redis_client, heartbeat_s=1)
        policy = QueuePolicy(max_active=1, admit_per_second=1000)
        for u in ("s1", "s2", "live", "late"):
            await svc.join(session_id=SID, user_id=u)
        for _ in range(6):  # 1.5 s: "live" polls, s1/s2 stay silent
            await asyncio.sleep(0.25)
            await svc.status(session_id=SID, user_id="live")
            await svc.status(session_id=SID, user_id="late")
        result = await svc.tick(session_id=SID, policy=policy)
        assert result.admitted == 1
        assert result.expired_waiters == 2
        assert await admitted_users(svc, ["s1", "s2", "live"]) == ["live"]
        for u in ("s1", "s2"):
            assert (await svc.status(session_id=SID, user_id=u)).state == "expired"
        assert (await svc.status(session_id=SID, user_id="late")).rank == 0

    @pytest.mark.slow
    async def test_the_sweep_drops_silent_waiters_far_from_the_head(
        self, redis_client: aioredis.Redis
    ) -> None:
        svc = make_service(redis_client, heartbeat_s=2)
        users = [f"w{i}" for i in range(500)]
        for u in users:
            await svc.join(session_id=SID, user_id=u)
        # Half keep polling (a round well within the timeout), half stay silent > 2.5 s
        # (the timeout plus one heartbeat bucket).
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3.0:
            for u in users[::2]:
                await svc.status(session_id=SID, user_id=u)
            await asyncio.sleep(0.2)
        policy = QueuePolicy(max_active=1, admit_per_second=0.001)  # admission not the cause
        for _ in range(4):  # 200 waiters swept per tick
            result = await svc.tick(session_id=SID, policy=policy)
        assert result.waiting == 249  # one admitted, 250 silent gone
        assert (await svc.status(session_id=SID, user_id=users[-2])).rank == 248


class TestSoldOut:
    async def test_sold_out_flips_waiters_at_once_and_stops_admission(
        self, svc: QueueService, redis_client: aioredis.Redis
    ) -> None:
        policy = QueuePolicy(max_active=10, admit_per_second=1000)
        for u in ("x", "y"):
            await svc.join(session_id=SID, user_id=u)
        await redis_client.set(keys.sold_out_flag(SID), "1")
        assert (await svc.status(session_id=SID, user_id="y")).state == "sold_out"
        before = await svc.tick(session_id=SID, policy=policy)
        assert before.sold_out
        assert before.admitted == 0
        assert (await svc.join(session_id=SID, user_id="z")).state == "sold_out"
        # A cancellation frees a seat: the line moves on, places kept.
        await redis_client.delete(keys.sold_out_flag(SID))
        after = await svc.tick(session_id=SID, policy=policy)
        assert after.admitted == 3
        assert after.version > before.version


class TestEstimate:
    def test_free_slots_go_at_the_configured_rate_then_at_the_measured_one(self) -> None:
        from gateway.queue.schemas import QueueView

        def view(rank: int, active: int, n: int, span_ms: int) -> Any:
            return QueueView("waiting", 1, rank, 0, 0, active, n, 100_000 - span_ms, 100_000, 0)

        policy = QueuePolicy(max_active=10, admit_per_second=5)
        assert estimate_wait_s(view(4, 0, 0, 0), policy) == 1.0
        assert estimate_wait_s(view(20, 10, 0, 0), policy) is None  # nothing measured
        # Slots full; 10 admissions in the last 20 s → 0.5/s.
        assert estimate_wait_s(view(9, 10, 10, 20_000), policy) == 20.0


class TestInstancesDisagree:
    async def test_the_first_heartbeat_setting_wins_for_a_session(
        self, redis_client: aioredis.Redis
    ) -> None:
        # Two instances configured with different timeouts must not expire live waiters.
        short = make_service(redis_client, heartbeat_s=30)
        long = make_service(redis_client, heartbeat_s=300)
        await short.join(session_id=SID, user_id="a")
        await short.join(session_id=SID, user_id="b")
        policy = QueuePolicy(max_active=1, admit_per_second=1000)
        result = await long.tick(session_id=SID, policy=policy)
        assert (result.admitted, result.expired_waiters) == (1, 0)
        assert (await long.status(session_id=SID, user_id="b")).state == "waiting"
