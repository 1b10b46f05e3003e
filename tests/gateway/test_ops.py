"""``/healthz``, ``/readyz`` (bounded even when an upstream hangs) and ``/metrics``."""

from __future__ import annotations

import asyncio
import time

import httpx

from gateway.testing import GatewayFactory, GatewayHarness


async def test_healthz(gateway: GatewayHarness) -> None:
    r = await gateway.client.get("/healthz")
    assert r.status_code == 200
    assert r.headers["x-request-id"]


async def test_readyz_ok_when_redis_and_upstreams_answer(gateway: GatewayHarness) -> None:
    gateway.api.get("/healthz").respond(200, json={"status": "ok"})
    gateway.ticket.get("/healthz").respond(200, json={"status": "ok"})
    r = await gateway.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"redis": "ok", "api": "ok", "ticket": "ok"}


async def test_readyz_names_a_hanging_upstream_within_the_bound(
    gateway_factory: GatewayFactory,
) -> None:
    async with gateway_factory(readiness_timeout_s=0.3) as gw:

        async def hang(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            return httpx.Response(200)

        gw.api.get("/healthz").mock(side_effect=hang)
        gw.ticket.get("/healthz").respond(503)
        started = time.monotonic()
        r = await gw.client.get("/readyz")
        assert time.monotonic() - started < 2.0
        assert r.status_code == 503
        failing = r.json()["failing"]
        assert set(failing) == {"api", "ticket"}


async def test_metrics_by_group_method_status(gateway: GatewayHarness) -> None:
    gateway.api.get("/api/venues").respond(200, json={})
    gateway.api.get("/api/venues/1").mock(side_effect=httpx.ConnectError("x"))
    await gateway.client.get("/api/venues")
    await gateway.client.get("/api/venues/1")
    await gateway.client.get("/api/ticketing/me/reservations")
    text = (await gateway.client.get("/metrics")).text
    assert (
        'boxoffice_http_requests_total{method="GET",route="browse",service="gateway",'
        'status="200"} 1.0' in text
    )
    assert 'route="browse",service="gateway",status="502"' in text
    assert 'route="ticketing-read",service="gateway",status="401"' in text
    assert "boxoffice_http_request_duration_seconds_bucket" in text
    assert 'boxoffice_gateway_upstream_errors_total{kind="connect",upstream="api"}' in text
    assert 'boxoffice_gateway_circuit_state{upstream="ticket"} 0.0' in text


async def test_openapi_lists_gateway_routes(gateway: GatewayHarness) -> None:
    r = await gateway.client.get("/openapi.json")
    assert r.status_code == 200
    assert "/api/auth/guest" in r.json()["paths"]


async def test_a_flood_of_readyz_is_not_a_flood_on_the_upstreams(
    gateway: GatewayHarness,
) -> None:
    """The verdict is shared for a second, and by every request while it is reached."""

    async def slow_ok(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"status": "ok"})

    api = gateway.api.get("/healthz").mock(side_effect=slow_ok)
    ticket = gateway.ticket.get("/healthz").respond(200, json={"status": "ok"})
    answers = await asyncio.gather(*(gateway.client.get("/readyz") for _ in range(50)))
    answers += [await gateway.client.get("/readyz") for _ in range(50)]
    assert {r.status_code for r in answers} == {200}
    assert len({r.headers["x-request-id"] for r in answers}) == 100
    assert (api.call_count, ticket.call_count) == (1, 1)
    await asyncio.sleep(1.1)  # the verdict expires: the next request asks again
    ticket.respond(503)
    r = await gateway.client.get("/readyz")
    assert r.status_code == 503
    assert set(r.json()["failing"]) == {"ticket"}
    assert (api.call_count, ticket.call_count) == (2, 2)
