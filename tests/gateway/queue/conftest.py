"""Fixtures of the queue tests: gateway apps served by in-process uvicorn on free ports
(real HTTP, real lifespan, so SSE streams and admission loops run as in production), with
api_server's session facts and ticket_server mocked by a respx router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
import respx
import uvicorn

from boxoffice.ports import free_port
from gateway.app import GatewayApp, create_app
from gateway.config import Settings
from shared import keys
from shared.events import ReservationCompleted, to_fields
from shared.tokens import issue_access_token, new_user_id
from svckit.http_server import HTTP_PROTOCOL

SECRET = "queue-test-secret-0123456789abcdef0123456789"
OPEN_SESSION = 1
LATER_SESSION = 2
TIGHT_SESSION = 3  # max_active 2


def session_body(
    session_id: int, *, opens_at: datetime, max_active: int, rate: float
) -> dict[str, Any]:
    """What api_server's ``GET /api/sessions/{id}`` answers."""
    return {
        "id": session_id,
        "performance_id": 1,
        "starts_at": (opens_at + timedelta(days=1)).isoformat(),
        "booking_opens_at": opens_at.isoformat(),
        "seat_count": 100,
        "sold_count": 0,
        "grades": [],
        "queue": {"max_active": max_active, "admit_per_second": rate},
    }


@pytest.fixture
def upstream_mock() -> respx.Router:
    """The mocked upstreams (``make_upstream_mock``)."""
    return make_upstream_mock()


def make_upstream_mock() -> respx.Router:
    """api_server with sessions 1 (open), 2 (opens tomorrow), 3 (open, 2 slots), else 404;
    ticket_server answers 200 to anything."""
    now = datetime.now(UTC)
    bodies = {
        OPEN_SESSION: session_body(
            OPEN_SESSION, opens_at=now - timedelta(hours=1), max_active=1000, rate=1000
        ),
        LATER_SESSION: session_body(
            LATER_SESSION, opens_at=now + timedelta(days=1), max_active=10, rate=10
        ),
        TIGHT_SESSION: session_body(
            TIGHT_SESSION, opens_at=now - timedelta(hours=1), max_active=2, rate=100
        ),
    }

    router = mock_sessions(bodies)
    router.route(url__regex=r"/api/ticketing/").mock(
        return_value=httpx.Response(200, json={"ok": True})
    )
    return router


def mock_sessions(bodies: dict[int, dict[str, Any]]) -> respx.Router:
    """api_server answering ``GET /api/sessions/{id}`` from ``bodies`` (else 404)."""
    router = respx.Router(assert_all_called=False)

    def session(request: httpx.Request, session_id: str) -> httpx.Response:
        body = bodies.get(int(session_id))
        if body is None:
            return httpx.Response(404, json={"title": "Not Found", "status": 404})
        return httpx.Response(200, json=body)

    router.get(url__regex=r"/api/sessions/(?P<session_id>\d+)$").mock(side_effect=session)
    router.get(url__regex=r"/healthz$").mock(return_value=httpx.Response(200, json={}))
    return router


def gateway_settings(redis_url: str, **overrides: Any) -> Settings:
    """Gateway settings for these tests (rate limiting off: many users join at once)."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "secret_key": SECRET,
        "rate_limit": {"enabled": False},
        "queue_heartbeat_timeout_s": 30,
        "admission_ttl_s": 600,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def serve_gateway(
    redis_url: str,
    router: respx.Router,
    *,
    adjust: Callable[[GatewayApp], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway served on a free port; yields a client whose base URL is it. ``adjust``
    may change the app before it serves."""
    app = create_app(
        gateway_settings(redis_url, **overrides),
        transport=httpx.MockTransport(router.async_handler),
    )
    if adjust is not None:
        adjust(app)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            http=HTTP_PROTOCOL,
            log_level="warning",
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await task


GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def gateway(redis_url: str, redis_sync: Any, upstream_mock: respx.Router) -> GatewayFactory:
    """Build a served gateway (several may share the flushed test Redis)."""

    def make(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        url = overrides.pop("redis_url", redis_url)
        return serve_gateway(url, upstream_mock, **overrides)

    return make


def user_headers(user_id: str | None = None) -> dict[str, str]:
    """Authorization header of a fresh (or given) guest user."""
    token = issue_access_token(
        secret=SECRET, user_id=user_id or new_user_id(), nickname="tester", ttl_s=3600
    )
    return {"Authorization": f"Bearer {token}"}


def push_completed(client: redis.Redis, session_id: int, user_id: str) -> None:
    """Write the ``reservation.completed`` event of ``user_id`` to the session's stream, as
    the ticket_server does on a confirm (it frees the user's queue slot)."""
    event = ReservationCompleted(
        reservation_id="r_1",
        session_id=session_id,
        user_id=user_id,
        seat_ids=[1],
        nickname="n",
        rank=1,
        completion_ms=1,
        queue_position=1,
        created_at=datetime.now(UTC),
    )
    fields: dict[Any, Any] = dict(to_fields(event))
    client.xadd(keys.events_stream(session_id), fields)
