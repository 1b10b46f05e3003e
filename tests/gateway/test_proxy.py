"""The proxy through the respx harness: routing, header hygiene, streaming, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.testing import GatewayFactory, GatewayHarness
from tests.gateway.asgi import http_scope


class TestRouting:
    async def test_catalog_goes_to_api_server_1to1(self, gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/performances", params={"q": "ham", "limit": "5"}).respond(
            200, json={"items": [], "total": 0, "offset": 0, "limit": 5}
        )
        r = await gateway.client.get("/api/performances?q=ham&limit=5")
        assert r.status_code == 200
        assert r.json()["limit"] == 5
        assert route.called
        assert route.calls.last.request.url.raw_path == b"/api/performances?q=ham&limit=5"

    @pytest.mark.parametrize(
        "path", ["/api/venues/1", "/api/sessions/3", "/api/stats/sessions/3", "/api/admin/venues"]
    )
    async def test_each_api_prefix(self, gateway: GatewayHarness, path: str) -> None:
        route = gateway.api.get(path).respond(200, json={"ok": True})
        r = await gateway.client.get(path)
        assert r.status_code == 200
        assert route.call_count == 1

    async def test_ticketing_goes_to_ticket_server(self, gateway: GatewayHarness) -> None:
        route = gateway.ticket.get("/api/ticketing/me/reservations").respond(
            200, json={"items": []}
        )
        r = await gateway.client.get(
            "/api/ticketing/me/reservations", headers=gateway.auth_headers()
        )
        assert r.status_code == 200
        assert route.called

    async def test_unknown_path_is_404_without_upstream(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.get("/nothing/here")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        assert not gateway.router.calls

    @pytest.mark.parametrize(
        "raw",
        [
            "/api/%2e%2e/admin/venues",
            "/api/%2E%2E/%2E%2E/etc/passwd",
            "/api/venues/..%2fadmin",
            "/api/venues%2f..%2f..%2fadmin",
            "/api//admin/venues",
            "/api/venues/%252e%252e/x",
            "/api/venues/..%5cadmin",
        ],
    )
    async def test_traversal_never_reaches_upstream(
        self, gateway: GatewayHarness, raw: str
    ) -> None:
        gateway.router.route().respond(200)
        # Build the request by hand: httpx would normalise dot segments itself.
        url = httpx.URL("http://gateway.test").copy_with(raw_path=raw.encode())
        r = await gateway.client.send(httpx.Request("GET", url))
        assert r.status_code in (400, 404)
        assert r.headers["content-type"] == "application/problem+json"
        assert not gateway.router.calls

    async def test_plain_dot_segments_via_asgi(self, gateway: GatewayHarness) -> None:
        gateway.router.route().respond(200)
        status, _, _ = await asgi_get(gateway, "/api/../admin/venues")
        assert status == 400
        assert not gateway.router.calls

    async def test_upstream_errors_pass_through_untouched(self, gateway: GatewayHarness) -> None:
        gateway.api.get("/api/venues/9").respond(
            404,
            content=b'{"title":"Not Found","status":404}',
            headers={"content-type": "application/problem+json", "x-custom": "1"},
        )
        gateway.api.get("/api/venues/10").respond(500, text="boom")
        r = await gateway.client.get("/api/venues/9")
        assert r.status_code == 404
        assert r.content == b'{"title":"Not Found","status":404}'
        assert r.headers["x-custom"] == "1"
        r = await gateway.client.get("/api/venues/10")
        assert (r.status_code, r.text) == (500, "boom")

    async def test_methods_and_bodies_pass_through(self, gateway: GatewayHarness) -> None:
        route = gateway.api.post("/api/admin/venues").respond(201, json={"id": 1})
        body = b'{"name": "V", "address": "A", "sections": []}'
        r = await gateway.client.post(
            "/api/admin/venues",
            content=body,
            headers={"content-type": "application/json", "x-admin-token": "t"},
        )
        assert r.status_code == 201
        sent = route.calls.last.request
        assert sent.content == body
        assert sent.headers["x-admin-token"] == "t"
        assert sent.headers["content-type"] == "application/json"


async def asgi_get(
    gateway: GatewayHarness, raw_path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
    """Call the gateway's ASGI app with an exact raw path (no client normalisation)."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    path = raw_path.split("?")[0]
    scope = http_scope(path, headers=headers or [])
    await gateway.asgi(scope, receive, send)
    start = messages[0]
    return start["status"], start["headers"], [m.get("body", b"") for m in messages[1:]]


class TestHeaderHygiene:
    async def test_request_headers(self, gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/venues").respond(200, json={})
        await gateway.client.get(
            "/api/venues",
            headers={
                "X-User-Id": "admin",
                "X-User-Roles": "root",
                "X-Authenticated-User": "admin",
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "1",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "Basic eA==",
                "Upgrade": "h2c",
                "Expect": "100-continue",
                "X-Forwarded-For": "203.0.113.9",
                "X-End-To-End": "kept",
                "Authorization": "Bearer not-checked-on-public-routes",
                "Host": "tix.example",
            },
        )
        h = route.calls.last.request.headers
        for name in (
            "x-user-id",
            "x-user-roles",
            "x-authenticated-user",
            "x-secret-hop",
            "keep-alive",
            "te",
            "proxy-authorization",
            "upgrade",
            "expect",
        ):
            assert name not in h, name
        assert h.get("connection") in (None, "keep-alive")  # only the client lib's own
        assert h["x-end-to-end"] == "kept"
        assert h["authorization"] == "Bearer not-checked-on-public-routes"
        assert h["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        assert h["x-forwarded-proto"] == "http"
        assert h["x-forwarded-host"] == "tix.example"
        assert h["host"] == "api.test"

    async def test_response_headers(self, gateway: GatewayHarness) -> None:
        gateway.api.get("/api/venues").respond(
            200,
            content=b"{}",
            headers={
                "content-type": "application/json",
                "connection": "x-upstream-hop",
                "x-upstream-hop": "1",
                "keep-alive": "timeout=5",
                "proxy-authenticate": "Basic",
                "trailer": "x-t",
                "cache-control": "max-age=1",
                "set-cookie": "a=1",
            },
        )
        r = await gateway.client.get("/api/venues")
        for name in ("x-upstream-hop", "keep-alive", "proxy-authenticate", "trailer"):
            assert name not in r.headers, name
        assert r.headers["cache-control"] == "max-age=1"
        assert r.headers["set-cookie"] == "a=1"


class TestRequestId:
    async def test_sane_id_is_kept_forwarded_and_returned(self, gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/venues").respond(200, json={})
        r = await gateway.client.get("/api/venues", headers={"X-Request-ID": "abc.DEF-1_2"})
        assert r.headers["x-request-id"] == "abc.DEF-1_2"
        assert route.calls.last.request.headers["x-request-id"] == "abc.DEF-1_2"

    @pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "semi;colon", "ünï"])
    async def test_insane_id_is_replaced(self, gateway: GatewayHarness, bad: str) -> None:
        route = gateway.api.get("/api/venues").respond(200, json={})
        status, headers, _ = await asgi_get(
            gateway, "/api/venues", [(b"x-request-id", bad.encode())]
        )
        assert status == 200
        rid = dict(headers)[b"x-request-id"].decode()
        assert rid != bad
        assert 1 <= len(rid) <= 128
        assert route.calls.last.request.headers["x-request-id"] == rid

    async def test_generated_when_missing_and_on_errors(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.get("/api/ticketing/me/reservations")
        assert r.status_code == 401
        assert r.headers["x-request-id"] == r.json()["request_id"]

    async def test_in_access_log(
        self, gateway: GatewayHarness, caplog: pytest.LogCaptureFixture
    ) -> None:
        gateway.api.get("/api/venues").respond(200, json={})
        with caplog.at_level("INFO", logger="boxoffice.access"):
            await gateway.client.get("/api/venues", headers={"X-Request-ID": "trace-me"})
        records = [r for r in caplog.records if r.name == "boxoffice.access"]
        assert any(getattr(r, "request_id", None) == "trace-me" for r in records)


class TestBodyLimit:
    async def test_declared_length_over_limit(self, gateway: GatewayHarness) -> None:
        route = gateway.api.post("/api/admin/venues").respond(201)
        r = await gateway.client.post("/api/admin/venues", content=b"x" * (1024 * 1024 + 1))
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        assert not route.called

    async def test_chunked_body_over_limit(self, gateway: GatewayHarness) -> None:
        async def consume(request: httpx.Request) -> httpx.Response:
            await request.aread()
            return httpx.Response(201)

        gateway.api.post("/api/admin/venues").mock(side_effect=consume)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"x" * 65536  # 1.25 MiB, no Content-Length

        r = await gateway.client.post("/api/admin/venues", content=chunks())
        assert r.status_code == 413

    async def test_at_limit_is_fine(self, gateway: GatewayHarness) -> None:
        route = gateway.api.post("/api/admin/venues").respond(201)
        r = await gateway.client.post("/api/admin/venues", content=b"x" * (1024 * 1024))
        assert r.status_code == 201
        assert len(route.calls.last.request.content) == 1024 * 1024

    async def test_gateway_owned_route_has_the_limit_too(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.post("/api/auth/guest", content=b"x" * (1024 * 1024 + 1))
        assert r.status_code == 413


class TestStreaming:
    async def test_10_mib_response_is_streamed_not_buffered(self, gateway: GatewayHarness) -> None:
        chunk = b"z" * 65536
        total_chunks = 160  # 10 MiB
        produced = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal produced
            for _ in range(total_chunks):
                produced += 1
                yield chunk
                await asyncio.sleep(0)

        gateway.api.get("/api/big").mock(return_value=httpx.Response(200, stream=_Stream(body())))
        produced_at_send: list[int] = []
        received = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal received
            if message["type"] == "http.response.body":
                received += len(message.get("body", b""))
                produced_at_send.append(produced)

        scope = http_scope("/api/big")
        await gateway.asgi(scope, receive, send)
        assert received == total_chunks * len(chunk)
        # The first bytes left the gateway while the upstream had produced almost nothing:
        # at no point did the gateway hold more than a couple of chunks.
        assert produced_at_send[0] <= 2
        assert len(produced_at_send) >= total_chunks - 1
        assert all(p - i <= 2 for i, p in enumerate(produced_at_send))


class _Stream(httpx.AsyncByteStream):
    def __init__(self, it: AsyncIterator[bytes]) -> None:
        self._it = it

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for c in self._it:
            yield c


class TestFailures:
    async def test_refused_is_502_naming_upstream(self, gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/venues").mock(side_effect=httpx.ConnectError("refused"))
        r = await gateway.client.get("/api/venues")
        assert r.status_code == 502
        problem = r.json()
        assert problem["upstream"] == "api"
        assert "api" in problem["detail"]
        assert r.headers["content-type"] == "application/problem+json"
        # GET is idempotent: retried on connection failure, bounded (1 + 2 retries).
        assert route.call_count == 1 + gateway.settings.upstream_retries

    async def test_post_is_never_retried(self, gateway: GatewayHarness) -> None:
        route = gateway.api.post("/api/admin/venues").mock(
            side_effect=httpx.ConnectError("refused")
        )
        r = await gateway.client.post("/api/admin/venues", json={})
        assert r.status_code == 502
        assert route.call_count == 1

    async def test_reset_is_502_and_not_retried(self, gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/venues").mock(
            side_effect=httpx.RemoteProtocolError("Server disconnected")
        )
        r = await gateway.client.get("/api/venues")
        assert r.status_code == 502
        assert r.json()["type"].endswith("upstream-reset")
        assert route.call_count == 1

    async def test_read_timeout_is_504(self, gateway: GatewayHarness) -> None:
        gateway.ticket.get("/api/ticketing/me/reservations").mock(
            side_effect=httpx.ReadTimeout("slow")
        )
        r = await gateway.client.get(
            "/api/ticketing/me/reservations", headers=gateway.auth_headers()
        )
        assert r.status_code == 504
        assert r.json()["upstream"] == "ticket"

    async def test_connect_timeout_is_504(self, gateway: GatewayHarness) -> None:
        gateway.api.get("/api/venues").mock(side_effect=httpx.ConnectTimeout("slow"))
        r = await gateway.client.get("/api/venues")
        assert r.status_code == 504

    async def test_retry_succeeds_after_one_refusal(self, gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/venues").mock(
            side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json={"ok": 1})]
        )
        r = await gateway.client.get("/api/venues")
        assert r.status_code == 200
        assert route.call_count == 2

    async def test_circuit_opens_then_recovers(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory(
            circuit_failure_threshold=3, circuit_cooldown_s=0.3, upstream_retries=0
        ) as gw:
            route = gw.api.get("/api/venues").mock(side_effect=httpx.ConnectError("refused"))
            for _ in range(3):
                assert (await gw.client.get("/api/venues")).status_code == 502
            r = await gw.client.get("/api/venues")
            assert r.status_code == 503
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["upstream"] == "api"
            assert route.call_count == 3  # open: the upstream was not called
            # Other upstreams are unaffected.
            gw.ticket.get("/api/ticketing/me/reservations").respond(200, json={"items": []})
            r = await gw.client.get("/api/ticketing/me/reservations", headers=gw.auth_headers())
            assert r.status_code == 200
            metrics = (await gw.client.get("/metrics")).text
            assert 'boxoffice_gateway_circuit_state{upstream="api"} 1.0' in metrics
            # After the cool-down one probe goes through; success closes the circuit.
            await asyncio.sleep(0.35)
            route.mock(side_effect=None, return_value=httpx.Response(200, json={}))
            assert (await gw.client.get("/api/venues")).status_code == 200
            assert (await gw.client.get("/api/venues")).status_code == 200
            metrics = (await gw.client.get("/metrics")).text
            assert 'boxoffice_gateway_circuit_state{upstream="api"} 0.0' in metrics
            assert 'kind="circuit_open"' in metrics

    async def test_failed_probe_reopens(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory(
            circuit_failure_threshold=1, circuit_cooldown_s=0.2, upstream_retries=0
        ) as gw:
            route = gw.api.get("/api/venues").mock(side_effect=httpx.ConnectError("refused"))
            assert (await gw.client.get("/api/venues")).status_code == 502
            assert (await gw.client.get("/api/venues")).status_code == 503
            await asyncio.sleep(0.25)
            assert (await gw.client.get("/api/venues")).status_code == 502  # the probe
            assert (await gw.client.get("/api/venues")).status_code == 503
            assert route.call_count == 2

    async def test_5xx_does_not_open_the_circuit(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory(circuit_failure_threshold=2) as gw:
            gw.api.get("/api/venues").respond(503, text="busy")
            for _ in range(5):
                assert (await gw.client.get("/api/venues")).status_code == 503
            r = await gw.client.get("/api/venues")
            assert r.text == "busy"  # still the upstream's own answer

    async def test_retries_count_once_for_the_breaker(
        self, gateway_factory: GatewayFactory
    ) -> None:
        async with gateway_factory(circuit_failure_threshold=2, upstream_retries=2) as gw:
            route = gw.api.get("/api/venues").mock(side_effect=httpx.ConnectError("refused"))
            assert (await gw.client.get("/api/venues")).status_code == 502
            assert route.call_count == 3
            # One failed request (3 attempts) is one failure: still closed.
            assert (await gw.client.get("/api/venues")).status_code == 502
            assert (await gw.client.get("/api/venues")).status_code == 503


class _Broken(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"partial"
        raise httpx.ReadError("upstream died mid-body")


async def test_small_body_cut_off_upstream_becomes_502(gateway: GatewayHarness) -> None:
    gateway.api.get("/api/venues").mock(
        return_value=httpx.Response(200, headers={"content-length": "100"}, stream=_Broken())
    )
    r = await gateway.client.get("/api/venues")
    assert r.status_code == 502
    assert r.json()["upstream"] == "api"


async def test_large_body_cut_off_ends_the_response(gateway: GatewayHarness) -> None:
    gateway.api.get("/api/big").mock(return_value=httpx.Response(200, stream=_Broken()))
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await gateway.asgi(http_scope("/api/big"), receive, send)
    assert messages[0]["status"] == 200
    # No final (more_body=False) message: the server closes the connection instead.
    assert all(m.get("more_body", False) for m in messages[1:])


async def test_micro_cache_hook_coalesces_anonymous_gets(gateway: GatewayHarness) -> None:
    from gateway.cache import MicroCache

    gateway.app.state.micro_cache = MicroCache({"browse": 5.0})
    calls = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"n": calls})

    gateway.api.get("/api/sessions/1").mock(side_effect=slow)
    rs = await asyncio.gather(*(gateway.client.get("/api/sessions/1") for _ in range(10)))
    assert calls == 1
    assert {r.json()["n"] for r in rs} == {1}
    assert {r.headers["x-cache"] for r in rs} == {"MISS", "COALESCED"}
    assert len({r.headers["x-request-id"] for r in rs}) == 10  # per request, not cached
    r = await gateway.client.get("/api/sessions/1")
    assert r.headers["x-cache"] == "HIT"
    # Identity bypasses the cache.
    r = await gateway.client.get("/api/sessions/1", headers=gateway.auth_headers())
    assert "x-cache" not in r.headers  # straight through, never near the cache
    assert calls == 2
