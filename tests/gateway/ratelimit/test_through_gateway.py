"""Rate limiting through the gateway app, upstream mocked with respx: headers on counted
responses, the 429 shape, the upstream never called when limited, keys by user or address,
X-Forwarded-For only from trusted proxies, closed policies answering 503 without Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import Settings
from shared.config import DEV_SECRET_KEY
from shared.tokens import issue_access_token
from tests.fixtures.services import EmbeddedRedis

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]

API = "http://api.test"
TICKET = "http://ticket.test"
SLOW = {"rate": 1, "period_s": 60}  # nothing refills during a test


@pytest.fixture(autouse=True)
def _no_queue_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue's admission loop is irrelevant here, and a cancel that lands inside a
    redis-py call can be lost (redis/redis-py#2028), which costs the lifespan its 5 s
    shutdown bound; a stand-in task keeps these tests fast."""
    import gateway.app

    def idle(runtime: object) -> asyncio.Task[None]:
        return asyncio.create_task(asyncio.Event().wait(), name="queue-admission-idle")  # type: ignore[arg-type]

    monkeypatch.setattr(gateway.app, "start_queue", idle)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run the app's lifespan (httpx's ASGI transport does not)."""
    async with app.router.lifespan_context(app):
        yield


def token(user_id: str) -> dict[str, str]:
    t = issue_access_token(secret=DEV_SECRET_KEY, user_id=user_id, nickname="n", ttl_s=600)
    return {"Authorization": f"Bearer {t}"}


@asynccontextmanager
async def gateway(
    redis_url: str, peer: str = "203.0.113.1", **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, respx.Router]]:
    router = respx.Router(assert_all_called=False)
    router.route(host="api.test").respond(200, json={"ok": True})
    router.route(host="ticket.test").respond(201, json={"ok": True})
    fields: dict[str, Any] = {
        "redis_url": redis_url,
        "api_server_url": API,
        "ticket_server_url": TICKET,
        "rate_limit": {
            "policies": {
                "browse": {**SLOW, "burst": 3},
                "ticketing-write": {**SLOW, "burst": 2},
                "auth": {**SLOW, "burst": 2},
            },
            "redis_timeout_s": 0.05,
        },
        **overrides,
    }
    app = create_app(Settings(**fields), transport=httpx.MockTransport(router.async_handler))
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with running(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c, router


def rl_headers(r: httpx.Response) -> tuple[int, int, int]:
    h = r.headers
    return int(h["ratelimit-limit"]), int(h["ratelimit-remaining"]), int(h["ratelimit-reset"])


class TestThroughGateway:
    async def test_headers_then_429_and_upstream_not_called(
        self, redis_client: Any, redis_url: str
    ) -> None:
        async with gateway(redis_url) as (c, router):
            got = [await c.get("/api/venues") for _ in range(4)]
            assert [r.status_code for r in got] == [200, 200, 200, 429]
            assert [rl_headers(r)[:2] for r in got] == [(3, 2), (3, 1), (3, 0), (3, 0)]
            assert router.calls.call_count == 3  # the fourth never left the gateway
            limited = got[3]
            assert limited.headers["content-type"] == "application/problem+json"
            assert limited.headers["retry-after"].isdigit()
            assert 1 <= int(limited.headers["retry-after"]) <= 60
            body = limited.json()
            assert body["status"] == 429
            assert body["type"].endswith("/rate-limited")
            assert body["request_id"] == limited.headers["x-request-id"]

    async def test_gateway_owned_routes_are_counted_too(
        self, redis_client: Any, redis_url: str
    ) -> None:
        async with gateway(redis_url) as (c, _):
            got = [await c.post("/api/auth/guest", json={"nickname": "ann"}) for _ in range(3)]
            assert [r.status_code for r in got][2] == 429
            assert rl_headers(got[0])[0] == 2
            assert got[0].status_code < 400

    async def test_users_are_keyed_by_id_and_groups_apart(
        self, redis_client: Any, redis_url: str
    ) -> None:
        async with gateway(redis_url) as (c, _):
            for _ in range(3):
                assert (await c.get("/api/venues", headers=token("u1"))).status_code == 200
            assert (await c.get("/api/venues", headers=token("u1"))).status_code == 429
            # Another user from the same address, and anonymous requests, are unaffected.
            assert (await c.get("/api/venues", headers=token("u2"))).status_code == 200
            assert (await c.get("/api/venues")).status_code == 200
            # Another route group of the same user has its own budget.
            r = await c.post("/api/ticketing/reservations", headers=token("u1"))
            assert r.status_code != 429
            assert rl_headers(r)[0] == 2

    async def test_spoofed_forwarded_for_from_untrusted_peer_changes_nothing(
        self, redis_client: Any, redis_url: str
    ) -> None:
        async with gateway(redis_url) as (c, _):
            codes = [
                (
                    await c.get("/api/venues", headers={"X-Forwarded-For": f"198.51.100.{i}"})
                ).status_code
                for i in range(5)
            ]
        assert codes == [200, 200, 200, 429, 429]

    async def test_forwarded_for_from_trusted_proxy_is_honoured(
        self, redis_client: Any, redis_url: str
    ) -> None:
        async with gateway(redis_url, peer="10.0.0.7", trusted_proxies="10.0.0.0/8") as (c, _):
            for i in range(5):
                r = await c.get("/api/venues", headers={"X-Forwarded-For": f"198.51.100.{i}"})
                assert r.status_code == 200
                assert rl_headers(r)[1] == 2  # each forwarded client has its own budget
            # A client prepending its own value still gets the address our proxy saw.
            for i in range(4):
                r = await c.get(
                    "/api/venues", headers={"X-Forwarded-For": f"1.1.1.{i}, 198.51.100.0"}
                )
            assert r.status_code == 429

    async def test_metrics_count_decisions(self, redis_client: Any, redis_url: str) -> None:
        async with gateway(redis_url) as (c, _):
            for _ in range(4):
                await c.get("/api/venues")
            text = (await c.get("/metrics")).text
        assert 'boxoffice_ratelimit_decisions_total{outcome="allowed",policy="browse"} 3.0' in text
        assert 'boxoffice_ratelimit_decisions_total{outcome="limited",policy="browse"} 1.0' in text

    async def test_disabled_means_no_headers(self, redis_client: Any, redis_url: str) -> None:
        async with gateway(redis_url, rate_limit={"enabled": False}) as (c, _):
            for _ in range(5):
                r = await c.get("/api/venues")
                assert r.status_code == 200
                assert "ratelimit-limit" not in r.headers


class TestRedisDownThroughGateway:
    async def test_closed_policy_503_local_policy_serves(self) -> None:
        server = EmbeddedRedis()  # never started: a Redis that is down
        async with gateway(server.url) as (c, router):
            r = await c.post("/api/ticketing/reservations", headers=token("u1"))
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert int(r.headers["retry-after"]) >= 1
            assert router.calls.call_count == 0
            # Browsing falls back to this gateway's own limiter: still limited, never a 500.
            codes = [(await c.get("/api/venues")).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
