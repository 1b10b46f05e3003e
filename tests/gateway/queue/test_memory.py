"""Status from each gateway's memory (``snapshot.py``): two services (two gateways' worth of
memory) on one Redis, random joins, leaves, silent drop-outs and admissions, every answer
compared with a brute-force model and with Redis's own (authoritative) answer."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.queue.runtime import make_queue_redis
from gateway.queue.schemas import QueuePolicy, QueueView
from gateway.queue.service import QueueService
from gateway.queue.snapshot import DropIndex

pytestmark = pytest.mark.integration

SECRET = "mem-test-secret-0123456789abcdef0123456789"
SID = 11


@pytest.fixture
async def gateways(redis_url: str, redis_sync: object) -> AsyncIterator[list[QueueService]]:
    """Two services, each with its own client and memory, on the flushed test Redis."""
    clients = [make_queue_redis(redis_url, timeout_s=5) for _ in range(2)]
    yield [
        QueueService(redis=c, secret=SECRET, heartbeat_timeout_s=2, admission_ttl_s=600)
        for c in clients
    ]
    for c in clients:
        await c.aclose()


class TestDropIndex:
    def test_counts_match_a_plain_count_at_every_offset(self) -> None:
        rng = random.Random(5)
        data = bytes(rng.choice((0, 0, 1, 128, 255, rng.randrange(256))) for _ in range(1500))
        index = DropIndex.build(3, data)
        bits = [0] * 24 + [(b >> (7 - k)) & 1 for b in data for k in range(8)]
        for _ in range(2000):
            lo = rng.randrange(24, len(bits))
            hi = rng.randrange(lo - 1, len(bits) + 20)
            assert index.count(lo, hi) == sum(bits[lo : hi + 1])
            assert index.is_set(lo) == bool(bits[lo])


async def _views(svc: QueueService, users: list[str], line: dict[str, int]) -> list[QueueView]:
    await svc.snapshot(SID, fresh=True)
    return [await svc.peek(session_id=SID, user_id=u, line=line.get(u)) for u in users]


class TestTwoGateways:
    async def test_positions_from_memory_are_exact_under_joins_leaves_and_drop_outs(
        self, gateways: list[QueueService], redis_client: aioredis.Redis
    ) -> None:
        rng = random.Random(19)
        a, b = gateways
        users = [f"u{i}" for i in range(240)]
        line: dict[str, int] = {}
        # 1. Concurrent joins from both gateways (some twice: the place is kept).
        order = users + rng.sample(users, 40)
        rng.shuffle(order)
        views = await asyncio.gather(
            *(gateways[i % 2].join(session_id=SID, user_id=u) for i, u in enumerate(order))
        )
        for u, v in zip(order, views, strict=True):
            assert line.setdefault(u, v.seq) == v.seq
        assert sorted(line.values()) == list(range(1, 241))
        # 2. Concurrent leaves from both gateways, while the others poll from memory.
        leavers = set(rng.sample(users, 50))
        silent = set(rng.sample([u for u in users if u not in leavers], 40))
        live = [u for u in users if u not in leavers and u not in silent]
        await asyncio.gather(
            *(gateways[i % 2].leave(session_id=SID, user_id=u) for i, u in enumerate(leavers)),
            *(gateways[i % 2].peek(session_id=SID, user_id=u) for i, u in enumerate(live)),
        )
        # 3. The silent stop polling for longer than the timeout; the live keep polling,
        # half on each gateway, their heartbeats written in batches.
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3.0:
            for i, u in enumerate(live):
                await gateways[i % 2].peek(session_id=SID, user_id=u, line=line[u])
            for g in gateways:
                await g.flush_beats(force=True)
            await asyncio.sleep(0.1)
        # 4. Admission: the first 30 live in line order, the silent met on the way dropped;
        # sweeps drop the rest of the silent.
        policy = QueuePolicy(max_active=30, admit_per_second=100_000)
        await a.tick(session_id=SID, policy=policy)
        for _ in range(3):
            await b.tick(session_id=SID, policy=QueuePolicy(30, 0.001))
        # Brute force: by line number, the live ones; 30 admitted, the rest in order.
        in_line = sorted(live, key=line.__getitem__)
        admitted, waiting = in_line[:30], in_line[30:]
        expected = dict.fromkeys(admitted, ("admitted", 0))
        expected |= {u: ("waiting", i) for i, u in enumerate(waiting)}
        expected |= dict.fromkeys(silent, ("expired", 0))
        # One more heartbeat round: the checks below take a while on a loaded machine, and
        # a live waiter must not fall silent during them.
        for i, u in enumerate(live):
            await gateways[i % 2].peek(session_id=SID, user_id=u, line=line[u])
        for g in gateways:
            await g.flush_beats(force=True)
        for g in gateways:
            for u, v in zip(users, await _views(g, users, line), strict=True):
                got = (v.state, v.rank)
                if u in leavers:
                    assert got[0] == "none", u
                else:
                    assert got == expected[u], u
        # Memory and Redis agree on every user, seen from either gateway.
        for u in users:
            truth = await a.status(session_id=SID, user_id=u, beat=False)
            for g in gateways:
                mine = await g.peek(session_id=SID, user_id=u)
                assert (mine.state, mine.seq, mine.rank) == (truth.state, truth.seq, truth.rank)
        assert (await a.tick(session_id=SID, policy=QueuePolicy(30, 0.001))).waiting == len(waiting)

    async def test_a_poll_from_memory_costs_no_redis_call(
        self, gateways: list[QueueService], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        a, b = gateways
        for i in range(50):
            await a.join(session_id=SID, user_id=f"p{i}")
        await b.peek(session_id=SID, user_id="p7")  # b learns p7's line number from Redis
        await b.snapshot(SID, fresh=True)
        calls: list[str] = []
        run = b._run

        async def counted(script: str, *args: object, **kwargs: object) -> object:
            calls.append(script)
            return await run(script, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(b, "_run", counted)
        for _ in range(200):
            view = await b.peek(session_id=SID, user_id="p7")
            assert (view.state, view.rank) == ("waiting", 7)
        assert calls == []  # within the snapshot's age: no Redis call at all
        assert await b.flush_beats(force=True) == 1  # 200 polls, one heartbeat written
        assert calls == ["beat"]
        await a.leave(session_id=SID, user_id="p0")
        b.changed(SID, -1)  # what b's admission loop does when the counter moves
        assert (await b.peek(session_id=SID, user_id="p7")).rank == 6
        assert calls == ["beat", "snapshot"]


class TestBatchedJoins:
    async def test_joins_in_one_turn_share_a_call_and_keep_every_rule(
        self, gateways: list[QueueService], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        a, b = gateways
        await a.join(session_id=SID, user_id="first")  # the line is open from here
        await a.leave(session_id=SID, user_id="first")
        calls: list[str] = []
        run = a.scripts.joins

        async def counted(**kwargs: object) -> object:
            calls.append("joins")
            return await run(**kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(a, "pipelined", None)
        monkeypatch.setattr(a, "scripts", dataclasses.replace(a.scripts, joins=counted))  # type: ignore[arg-type]
        users = [f"j{i}" for i in range(300)]
        views = await asyncio.gather(
            *(a.join_batched(session_id=SID, user_id=u) for u in users + users[:10])
        )
        assert len(calls) == 2  # 300 distinct members, 256 per call
        assert [v.seq for v in views[:300]] == list(range(2, 302))
        assert [v.rank for v in views[:300]] == list(range(300))
        assert [v.seq for v in views[300:]] == list(range(2, 12))  # the same place
        # Joining again later keeps the place (the full script answers it).
        again = await a.join_batched(session_id=SID, user_id="j5")
        assert (again.state, again.seq, again.rank) == ("waiting", 7, 5)
        for u in users:
            truth = await b.status(session_id=SID, user_id=u, beat=False)
            assert (truth.state, truth.seq) == ("waiting", users.index(u) + 2)


class TestLineLost:
    async def test_a_line_redis_lost_is_not_answered_from_memory(
        self, gateways: list[QueueService], redis_client: aioredis.Redis
    ) -> None:
        """After Redis lost the line (a flush) and new joiners took the same line numbers,
        an old waiter's remembered number or ticket must not answer for them: they are told
        they have no place (and join again), never shown someone else's place or
        admission."""
        a, b = gateways
        for i in range(5):
            await a.join(session_id=SID, user_id=f"old{i}")
        await a.snapshot(SID, fresh=True)
        ticket = a.ticket_for(SID, "old4")
        assert ticket is not None
        assert (await a.peek(session_id=SID, user_id="old4")).state == "waiting"

        await redis_client.flushdb()
        for i in range(5):  # the new line gives out 1..5 again
            await b.join(session_id=SID, user_id=f"new{i}")
        await a.snapshot(SID, fresh=True)

        assert (await a.peek(session_id=SID, user_id="old4")).state == "none"
        assert a.ticket_line(SID, "old4", ticket) is None
        assert (await a.peek(session_id=SID, user_id="old4", ticket=ticket)).state == "none"
        view = await a.peek(session_id=SID, user_id="new4")
        assert (view.state, view.rank) == ("waiting", 4)  # four ahead
        assert a.ticket_for(SID, "new4") != ticket

    async def test_the_first_places_of_a_line_are_remembered(
        self, gateways: list[QueueService]
    ) -> None:
        """A line that starts (generation 0 to its first) is no loss: the line numbers of its
        first joiners stay in memory, so their polls cost Redis nothing."""
        a, _ = gateways
        await a.snapshot(SID, fresh=True)  # before anyone joined: generation 0
        await a.join(session_id=SID, user_id="first")
        await a.snapshot(SID, fresh=True)
        assert a.line_of(SID, "first") == 1
