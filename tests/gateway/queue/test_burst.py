"""The opening burst: thousands of joins for one session arrive together, and what each would
fetch or write once (session facts, the registry entry) happens once for all of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import respx

from gateway.queue.admission import SessionRegistry
from gateway.queue.facts import SessionFactsClient
from gateway.queue.schemas import QueuePolicy
from gateway.queue.service import QueueUnavailable
from shared import keys
from svckit.errors import NotFound, ServiceUnavailable
from tests.gateway.queue.conftest import session_body

pytestmark = pytest.mark.integration

BURST = 300


async def test_a_burst_of_joins_registers_the_session_once(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = SessionRegistry(redis_client)
    writes: list[tuple[Any, ...]] = []
    real_zadd = redis_client.zadd

    async def counting_zadd(*args: Any, **kwargs: Any) -> Any:
        writes.append(args)
        await asyncio.sleep(0.02)  # a slow Redis: the burst arrives while the write is out
        return await real_zadd(*args, **kwargs)

    monkeypatch.setattr(redis_client, "zadd", counting_zadd)
    await asyncio.gather(*(registry.register(41) for _ in range(BURST)))
    assert len(writes) == 1
    assert await redis_client.zscore(keys.queue_sessions(), "41") is not None
    # Within the refresh period nothing is written again; after it, once more.
    await registry.register(41)
    assert len(writes) == 1
    registry._registered[41] = 0.0  # as if the refresh period had passed
    await asyncio.gather(*(registry.register(41) for _ in range(BURST)))
    assert len(writes) == 2


async def test_a_failed_registration_fails_every_join_waiting_on_it_then_is_retried(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = SessionRegistry(redis_client)
    real_zadd = redis_client.zadd
    calls = 0

    async def flaky_zadd(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise ConnectionError("redis went away")
        return await real_zadd(*args, **kwargs)

    monkeypatch.setattr(redis_client, "zadd", flaky_zadd)
    results = await asyncio.gather(
        *(registry.register(42) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, QueueUnavailable) for r in results)
    await registry.register(42)  # not remembered as registered: the next join writes
    assert calls == 2
    assert await redis_client.zscore(keys.queue_sessions(), "42") is not None


async def test_a_burst_of_joins_fetches_the_session_facts_once() -> None:
    opens = datetime.now(UTC) - timedelta(minutes=1)
    body = session_body(5, opens_at=opens, max_active=50, rate=20)
    async with respx.mock(base_url="http://api") as router:
        route = router.get("/api/sessions/5")

        async def slow(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.02)
            return httpx.Response(200, json=body)

        route.mock(side_effect=slow)
        async with httpx.AsyncClient(base_url="http://api") as client:
            facts = SessionFactsClient(client=client, default_policy=QueuePolicy(10, 10))
            got = await asyncio.gather(*(facts.get(5) for _ in range(BURST)))
        assert route.call_count == 1
        assert {f.policy for f in got} == {QueuePolicy(50, 20)}


async def test_the_burst_shares_an_api_server_failure_and_the_next_join_asks_again() -> None:
    async with respx.mock(base_url="http://api") as router:
        route = router.get("/api/sessions/6").mock(
            side_effect=[httpx.ConnectError("refused"), httpx.Response(404, json={})]
        )
        async with httpx.AsyncClient(base_url="http://api") as client:
            facts = SessionFactsClient(client=client, default_policy=QueuePolicy(10, 10))
            results = await asyncio.gather(
                *(facts.get(6) for _ in range(20)), return_exceptions=True
            )
            assert all(isinstance(r, ServiceUnavailable) for r in results)
            assert route.call_count == 1
            with pytest.raises(Exception, match="does not exist"):
                await facts.get(6)
        assert route.call_count == 2


async def test_the_facts_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    """Joins for made-up session ids must not grow the gateway without bound (issue 16)."""
    opens = datetime.now(UTC) - timedelta(minutes=1)
    async with respx.mock(base_url="http://api") as router:
        router.get("/api/sessions/1").respond(
            200, json=session_body(1, opens_at=opens, max_active=5, rate=5)
        )
        unknown = router.get(url__regex=r"/api/sessions/\d{3,}$").respond(404, json={})
        async with httpx.AsyncClient(base_url="http://api") as client:
            facts = SessionFactsClient(
                client=client, default_policy=QueuePolicy(10, 10), max_entries=10
            )
            await facts.get(1)
            for session_id in range(100, 400):
                with pytest.raises(NotFound):
                    await facts.get(session_id)
                if session_id % 5 == 0:
                    await facts.get(1)  # in use: stays cached
            assert len(facts) == 10
            assert facts.cached(1) is not None
            assert facts.cached(100) is None
        assert unknown.call_count == 300
