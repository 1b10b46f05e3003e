"""api_server in-process: the real app (lifespan included) behind ``httpx.ASGITransport``,
on the suite's test database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api_server.app import create_app
from api_server.config import Settings
from shared.db.models import (
    Performance,
    PerformanceSession,
    Ranking,
    Reservation,
    ReservationSeat,
    Seat,
    Venue,
)

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
PROBLEM = "application/problem+json"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings that ignore the developer's environment and ``.env``."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "read_database_url": None,
        "admin_token": ADMIN_TOKEN,
        "queue_default_max_active": 77,
        "queue_default_admit_per_second": 3.5,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and hand its state to every request, as a server would
    (``ASGITransport`` runs no lifespan)."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def api(clean_db: Engine, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a fresh app over the (emptied-after) test database."""
    async with serve(create_app(make_settings(database_url))) as client:
        yield client


@pytest.fixture
def db(clean_db: Engine) -> Iterator[Session]:
    """An ORM session on the test database for arranging rows directly."""
    with Session(clean_db, expire_on_commit=False) as session:
        yield session


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    """``resp`` is a problem+json of ``status`` carrying the response's request id."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


def add_catalog(
    db: Session,
    *,
    title: str = "Aurora Live",
    sections: tuple[tuple[str, str, str, int], ...] = (
        ("VIP", "150000", "AB", 3),
        ("R", "90", "C", 4),
    ),
    session_offsets_h: tuple[int, ...] = (24,),
) -> tuple[Venue, Performance, list[PerformanceSession]]:
    """A venue (``sections`` = grade, price, row letters, seats per row), a performance and
    sessions starting ``session_offsets_h`` hours from now, committed."""
    venue = Venue(name=f"Hall of {title}", address="1 Main St")
    for grade, price, rows, per_row in sections:
        for row in rows:
            for n in range(1, per_row + 1):
                venue.seats.append(
                    Seat(label=f"{row}-{n}", row=row, number=n, grade=grade, price=Decimal(price))
                )
    venue.seat_count = len(venue.seats)
    perf = Performance(title=title, description="desc", venue=venue)
    now = datetime.now(UTC).replace(microsecond=0)
    sessions = [
        PerformanceSession(
            performance=perf,
            starts_at=now + timedelta(hours=h),
            booking_opens_at=now - timedelta(hours=1),
            queue_max_active=5,
            queue_admit_per_second=2.5,
        )
        for h in session_offsets_h
    ]
    db.add_all([venue, perf, *sessions])
    db.commit()
    return venue, perf, sessions


def add_reservation(
    db: Session,
    session: PerformanceSession,
    seats: list[Seat],
    *,
    rank: int,
    completion_ms: int,
    cancelled: bool = False,
    queue_position: int | None = None,
) -> None:
    """A reservation as the worker stores it: seat rows and a ranking row while live."""
    rid = f"res-{session.id}-{rank}"
    now = datetime.now(UTC)
    db.add(
        Reservation(
            id=rid,
            session_id=session.id,
            user_id=f"user-{rank}",
            nickname=f"nick {rank}",
            status="cancelled" if cancelled else "confirmed",
            rank=rank,
            completion_ms=completion_ms,
            queue_position=queue_position,
            seat_ids=[s.id for s in seats],
            seat_count=len(seats),
            created_at=now,
            cancelled_at=now if cancelled else None,
        )
    )
    db.flush()
    if not cancelled:
        db.add_all(
            ReservationSeat(reservation_id=rid, seat_id=s.id, session_id=session.id) for s in seats
        )
        db.add(
            Ranking(
                reservation_id=rid,
                session_id=session.id,
                rank=rank,
                user_id=f"user-{rank}",
                nickname=f"nick {rank}",
                completion_ms=completion_ms,
                seat_count=len(seats),
                queue_position=queue_position,
            )
        )
    db.commit()
