"""The micro-cache inside the gateway (gateway/cache.py, enabled by ``micro_cache_ttl_s``): hot
anonymous GETs of configured route groups reach the upstream once per key per TTL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from gateway.testing import GatewayFactory

VENUES = {"items": [], "total": 0, "offset": 0, "limit": 20}


def slow_upstream(
    calls: list[int], headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """A respx side effect answering after 50 ms, so concurrent requests really overlap."""

    async def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        n = len(calls)
        await asyncio.sleep(0.05)
        # Like every service (svckit), echo the request id the gateway forwarded.
        echo = {"X-Request-ID": request.headers.get("x-request-id", "")}
        return httpx.Response(200, json={**VENUES, "n": n}, headers=echo | (headers or {}))

    return answer


class TestMicroCacheInGateway:
    async def test_64_concurrent_gets_one_upstream_request(
        self, gateway_factory: GatewayFactory
    ) -> None:
        async with gateway_factory(micro_cache_ttl_s={"browse": 1.0}) as gw:
            calls: list[int] = []
            gw.api.get("/api/venues").mock(side_effect=slow_upstream(calls))
            rs = await asyncio.gather(*(gw.client.get("/api/venues") for _ in range(64)))
            assert len(calls) == 1
            assert {r.status_code for r in rs} == {200}
            assert {r.json()["n"] for r in rs} == {1}
            assert Counter(r.headers["x-cache"] for r in rs) == {"MISS": 1, "COALESCED": 63}
            # Each answer carries its own request id, and only its own.
            assert all(len(r.headers.get_list("x-request-id")) == 1 for r in rs)
            assert len({r.headers["x-request-id"] for r in rs}) == 64
            hit = await gw.client.get("/api/venues")
            assert hit.headers["x-cache"] == "HIT"
            assert "age" in hit.headers
            assert len(calls) == 1

    async def test_requests_with_identity_bypass(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory(micro_cache_ttl_s={"browse": 1.0}) as gw:
            calls: list[int] = []
            gw.api.get("/api/venues").mock(side_effect=slow_upstream(calls))
            headers = gw.auth_headers()
            rs = await asyncio.gather(
                *(gw.client.get("/api/venues", headers=headers) for _ in range(8))
            )
            assert len(calls) == 8
            assert all("x-cache" not in r.headers for r in rs)

    async def test_private_answers_not_shared(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory(micro_cache_ttl_s={"browse": 1.0}) as gw:
            calls: list[int] = []
            gw.api.get("/api/venues").mock(
                side_effect=slow_upstream(calls, {"Cache-Control": "private"})
            )
            rs = await asyncio.gather(*(gw.client.get("/api/venues") for _ in range(8)))
            assert len(calls) == 8
            assert len({r.json()["n"] for r in rs}) == 8

    async def test_off_by_default(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory() as gw:
            calls: list[int] = []
            gw.api.get("/api/venues").mock(side_effect=slow_upstream(calls))
            rs = await asyncio.gather(*(gw.client.get("/api/venues") for _ in range(4)))
            assert len(calls) == 4
            assert all("x-cache" not in r.headers for r in rs)

    async def test_upstream_failure_shared_as_502(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory(micro_cache_ttl_s={"browse": 1.0}, upstream_retries=0) as gw:
            route = gw.api.get("/api/venues").mock(side_effect=httpx.ConnectError("refused"))
            rs = await asyncio.gather(*(gw.client.get("/api/venues") for _ in range(8)))
            assert {r.status_code for r in rs} == {502}
            assert rs[0].headers["content-type"].startswith("application/problem+json")
            assert route.call_count <= 8  # coalesced while in flight; never a 500

    async def test_rate_limiting_still_applies(self, gateway_factory: GatewayFactory) -> None:
        limits = {"enabled": True, "policies": {"browse": {"rate": 1, "burst": 3}}}
        async with gateway_factory(micro_cache_ttl_s={"browse": 10.0}, rate_limit=limits) as gw:
            calls: list[int] = []
            gw.api.get("/api/venues").mock(side_effect=slow_upstream(calls))
            statuses = [(await gw.client.get("/api/venues")).status_code for _ in range(5)]
            assert statuses[:3] == [200, 200, 200]
            assert 429 in statuses[3:]
            assert len(calls) == 1
