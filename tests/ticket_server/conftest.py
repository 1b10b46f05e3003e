"""Fixtures of the ticket_server tests: a catalog session in the database, the app on an
in-process transport (lifespan run by hand, so its state reaches the requests), and
users with access and admission tokens."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert

from shared.db.models import Performance, PerformanceSession, Seat, Venue
from shared.tokens import issue_access_token, issue_admission_token, new_user_id
from ticket_server.app import create_app
from ticket_server.config import Settings

SECRET = "test-secret-key-for-ticket-server-0123456789"
_positions = itertools.count(1)


@dataclass(frozen=True)
class CatalogSession:
    """A session in the catalog and the ids of its seats."""

    session_id: int
    seat_ids: list[int]
    booking_opens_at: datetime


def create_session(
    engine: Engine, *, seats: int = 10, opens_ago_s: float = 60.0, grades: int = 2
) -> CatalogSession:
    """Insert a venue with ``seats`` seats, a performance and one session."""
    now = datetime.now(UTC)
    opens = (now - timedelta(seconds=opens_ago_s)).replace(microsecond=0)
    with engine.begin() as conn:
        venue_id = conn.execute(
            insert(Venue).values(name="Hall", address="1 Main St", seat_count=seats, created_at=now)
        ).inserted_primary_key[0]  # type: ignore[index]
        rows = [
            {
                "venue_id": venue_id,
                "label": f"{chr(65 + i // 50)}-{i % 50 + 1}",
                "row": chr(65 + i // 50),
                "number": i % 50 + 1,
                "grade": "VIP" if i % grades == 0 else "R",
                "price": 150000 if i % grades == 0 else 90000,
            }
            for i in range(seats)
        ]
        if rows:
            conn.execute(insert(Seat), rows)
        perf_id = conn.execute(
            insert(Performance).values(
                title="Show", description="", venue_id=venue_id, created_at=now
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        session_id = conn.execute(
            insert(PerformanceSession).values(
                performance_id=perf_id,
                starts_at=now + timedelta(days=7),
                booking_opens_at=opens,
                queue_max_active=100,
                queue_admit_per_second=10,
                created_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        seat_ids = [
            r[0]
            for r in conn.execute(
                Seat.__table__.select().with_only_columns(Seat.id).where(Seat.venue_id == venue_id)
            ).all()
        ]
    return CatalogSession(int(session_id), sorted(int(s) for s in seat_ids), opens)


@dataclass
class User:
    """A guest user with an access token; ``headers(session)`` adds an admission token."""

    user_id: str
    nickname: str
    token: str
    queue_position: int

    @classmethod
    def new(cls, nickname: str = "guest", secret: str = SECRET) -> User:
        uid = new_user_id()
        token = issue_access_token(secret=secret, user_id=uid, nickname=nickname, ttl_s=3600)
        return cls(uid, nickname, token, next(_positions))

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def admission(self, session_id: int, *, secret: str = SECRET, ttl_s: int = 600) -> str:
        token, _ = issue_admission_token(
            secret=secret,
            user_id=self.user_id,
            session_id=session_id,
            queue_position=self.queue_position,
            ttl_s=ttl_s,
        )
        return token

    def headers(self, session_id: int, **extra: str) -> dict[str, str]:
        return {**self.auth(), "X-Admission-Token": self.admission(session_id), **extra}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app."""
    # A small pool: every test builds its own app, and the lifespan opens the whole pool.
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SECRET,
        "redis_max_connections": 8,
    }
    values.update(overrides)
    return Settings(**values)


class _WithState:
    """Runs the app's lifespan once and hands its state to every request, as a server would."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["state"] = dict(self.state)
        await self.app(scope, receive, send)


AppFactory = Callable[..., Any]


@pytest.fixture
async def make_client(
    database_url: str, redis_url: str, redis_sync: Any
) -> AsyncIterator[AppFactory]:
    """Factory: ``await make_client(**settings_overrides)`` → an httpx client on a fresh app."""
    stack: list[Any] = []

    async def factory(**overrides: Any) -> httpx.AsyncClient:
        overrides.setdefault("redis_url", redis_url)
        app = create_app(make_settings(overrides.pop("database_url", database_url), **overrides))
        cm = app.router.lifespan_context(app)
        state = await cm.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_WithState(app, state or {})),
            base_url="http://ticket",
        )
        stack.append((cm, client))
        return client

    yield factory
    for cm, client in reversed(stack):
        await client.aclose()
        await cm.__aexit__(None, None, None)


@pytest.fixture
async def client(make_client: AppFactory) -> httpx.AsyncClient:
    """A client on an app with default settings."""
    made: httpx.AsyncClient = await make_client()
    return made


@pytest.fixture
def session(clean_db: Engine) -> CatalogSession:
    """A session with 10 seats whose booking opened a minute ago."""
    return create_session(clean_db, seats=10)
