"""Test harness for QA: the gateway app with its upstreams mocked by respx.

Use it from pytest (``tests/gateway/conftest.py`` registers the fixtures; other test trees
can do the same with ``from gateway.testing import gateway, gateway_factory  # noqa``)::

    async def test_catalog(gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/venues").respond(200, json={"items": []})
        r = await gateway.client.get("/api/venues")
        assert r.status_code == 200
        assert route.calls.last.request.headers["x-request-id"] == r.headers["x-request-id"]

    async def test_booking(gateway: GatewayHarness) -> None:
        gateway.ticket.get("/api/ticketing/sessions/7/seats").respond(200, json={...})
        headers = gateway.auth_headers(user_id="u_1") | gateway.admission_headers("u_1", 7)
        r = await gateway.client.get("/api/ticketing/sessions/7/seats", headers=headers)

- ``gateway.api`` / ``gateway.ticket``: respx routers scoped to api_server's and
  ticket_server's base URL (``gateway.api.get("/api/venues")`` mocks
  ``GET http://api.test/api/venues``). Unmocked upstream calls fail the request loudly
  (respx raises; the gateway answers 502) — assert on what you mocked.
- ``gateway.client``: an ``httpx.AsyncClient`` talking ASGI to the gateway with its lifespan
  running (the client address is ``127.0.0.1``).
- ``gateway_factory(**settings_overrides)`` builds more (e.g. a different circuit
  threshold); the rate limiter is off unless ``rate_limit={"enabled": True}`` is passed.

The transport is injected through ``create_app(settings, transport=...)`` as
``httpx.MockTransport(router.async_handler)``: respx's global ``respx.mock`` only patches
httpcore, which the production transport does not use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import Settings
from shared.tokens import issue_access_token, issue_admission_token, new_user_id

API_URL = "http://api.test"
TICKET_URL = "http://ticket.test"


@asynccontextmanager
async def run_lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    """Run an ASGI app's lifespan (startup before, shutdown after); yields its state."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}

    async def send(message: dict[str, Any]) -> None:
        await from_app.put(message)

    task = asyncio.create_task(app(scope, to_app.get, send))
    await to_app.put({"type": "lifespan.startup"})
    message = await from_app.get()
    if message["type"] != "lifespan.startup.complete":
        await task
        raise RuntimeError(f"lifespan startup failed: {message.get('message')}")
    try:
        yield state
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


def _with_state(app: Any, state: dict[str, Any]) -> Callable[..., Awaitable[None]]:
    """What uvicorn does and httpx's ASGITransport does not: copy the lifespan state into
    every request's scope."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["state"] = dict(state)
        await app(scope, receive, send)

    return wrapped


@dataclass
class GatewayHarness:
    """A running gateway with mocked upstreams (see the module docstring)."""

    app: FastAPI
    settings: Settings
    router: respx.Router
    client: httpx.AsyncClient
    asgi: Callable[..., Awaitable[None]]
    api: UpstreamMocks = field(init=False)
    ticket: UpstreamMocks = field(init=False)

    def __post_init__(self) -> None:
        self.api = UpstreamMocks(self.router, self.settings.api_server_url)
        self.ticket = UpstreamMocks(self.router, self.settings.ticket_server_url)

    def token(self, user_id: str | None = None, nickname: str = "qa", ttl_s: int = 600) -> str:
        """A valid access token."""
        return issue_access_token(
            secret=self.settings.secret_key,
            user_id=user_id or new_user_id(),
            nickname=nickname,
            ttl_s=ttl_s,
        )

    def auth_headers(self, user_id: str | None = None) -> dict[str, str]:
        """``Authorization: Bearer <valid token>``."""
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def admission_headers(self, user_id: str, session_id: int, ttl_s: int = 600) -> dict[str, str]:
        """``X-Admission-Token`` valid for (user, session)."""
        token, _ = issue_admission_token(
            secret=self.settings.secret_key,
            user_id=user_id,
            session_id=session_id,
            queue_position=1,
            ttl_s=ttl_s,
        )
        return {"X-Admission-Token": token}


class UpstreamMocks:
    """A respx router view whose paths are relative to one upstream's base URL."""

    def __init__(self, router: respx.Router, base_url: str) -> None:
        self._router = router
        self._base = base_url.rstrip("/")

    def route(self, method: str, path: str, **lookups: Any) -> respx.Route:
        """Mock ``method`` ``path`` (an exact path; pass ``path__regex=`` for patterns)."""
        return self._router.route(method=method, url=self._base + path, **lookups)

    def get(self, path: str, **lookups: Any) -> respx.Route:
        """Mock ``GET path``."""
        return self.route("GET", path, **lookups)

    def post(self, path: str, **lookups: Any) -> respx.Route:
        """Mock ``POST path``."""
        return self.route("POST", path, **lookups)

    def put(self, path: str, **lookups: Any) -> respx.Route:
        """Mock ``PUT path``."""
        return self.route("PUT", path, **lookups)

    def delete(self, path: str, **lookups: Any) -> respx.Route:
        """Mock ``DELETE path``."""
        return self.route("DELETE", path, **lookups)

    def head(self, path: str, **lookups: Any) -> respx.Route:
        """Mock ``HEAD path``."""
        return self.route("HEAD", path, **lookups)


def harness_settings(redis_url: str, **overrides: Any) -> Settings:
    """Gateway settings for tests: mocked upstream URLs, no retry back-off, no rate limit."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "api_server_url": API_URL,
        "ticket_server_url": TICKET_URL,
        "upstream_retry_backoff_s": 0.0,
        "rate_limit": {"enabled": False},
        "background_shutdown_timeout_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def gateway_harness(redis_url: str, **overrides: Any) -> AsyncIterator[GatewayHarness]:
    """Build and start a gateway whose upstreams are a fresh respx router."""
    settings = harness_settings(redis_url, **overrides)
    router = respx.Router(assert_all_called=False, assert_all_mocked=True)
    app = create_app(settings, transport=httpx.MockTransport(router.async_handler))
    async with run_lifespan(app) as state:
        asgi = _with_state(app, state)
        transport = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            yield GatewayHarness(app=app, settings=settings, router=router, client=c, asgi=asgi)


GatewayFactory = Callable[..., AbstractAsyncContextManager[GatewayHarness]]


@pytest.fixture
def gateway_factory(redis_url: str) -> GatewayFactory:
    """``async with gateway_factory(circuit_failure_threshold=2) as gw: ...``"""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[GatewayHarness]:
        return gateway_harness(redis_url, **overrides)

    return factory


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[GatewayHarness]:
    """A started gateway with default test settings and respx-mocked upstreams."""
    async with gateway_harness(redis_url) as harness:
        yield harness
