"""The migrations and the models agree, and the database refuses double sales."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from shared.db.base import Base
from shared.db.models import (
    Performance,
    PerformanceSession,
    Reservation,
    ReservationSeat,
    Seat,
    Venue,
)

pytestmark = pytest.mark.integration


def test_migrations_match_models(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def _catalog(conn) -> tuple[int, int, int]:
    now = datetime.now(UTC)
    venue_id = conn.execute(
        insert(Venue).values(name="V", address="A", seat_count=1, created_at=now)
    ).inserted_primary_key[0]
    seat_id = conn.execute(
        insert(Seat).values(venue_id=venue_id, label="A-1", row="A", number=1, grade="R", price=1)
    ).inserted_primary_key[0]
    perf_id = conn.execute(
        insert(Performance).values(title="P", description="", venue_id=venue_id, created_at=now)
    ).inserted_primary_key[0]
    session_id = conn.execute(
        insert(PerformanceSession).values(
            performance_id=perf_id,
            starts_at=now,
            booking_opens_at=now,
            queue_max_active=1,
            queue_admit_per_second=1,
            created_at=now,
        )
    ).inserted_primary_key[0]
    return venue_id, seat_id, session_id


def _reservation(conn, rid: str, session_id: int, rank: int, seat_id: int) -> None:
    now = datetime.now(UTC)
    conn.execute(
        insert(Reservation).values(
            id=rid,
            session_id=session_id,
            user_id="u",
            nickname="n",
            status="confirmed",
            rank=rank,
            completion_ms=1,
            queue_position=1,
            seat_ids=[seat_id],
            seat_count=1,
            created_at=now,
        )
    )
    conn.execute(
        insert(ReservationSeat).values(reservation_id=rid, seat_id=seat_id, session_id=session_id)
    )


def test_database_refuses_a_seat_sold_twice(clean_db: Engine) -> None:
    with clean_db.begin() as conn:
        _, seat_id, session_id = _catalog(conn)
        _reservation(conn, "r1", session_id, 1, seat_id)
    with pytest.raises(IntegrityError), clean_db.begin() as conn:
        _reservation(conn, "r2", session_id, 2, seat_id)


def test_database_refuses_a_reservation_stored_twice(clean_db: Engine) -> None:
    with clean_db.begin() as conn:
        _, seat_id, session_id = _catalog(conn)
        _reservation(conn, "r1", session_id, 1, seat_id)
    with pytest.raises(IntegrityError), clean_db.begin() as conn:
        _reservation(conn, "r1", session_id, 1, seat_id)


def test_times_come_back_aware_utc(clean_db: Engine) -> None:
    with clean_db.begin() as conn:
        venue_id, _, _ = _catalog(conn)
        created = conn.execute(Venue.__table__.select().where(Venue.id == venue_id)).one()
    assert created.created_at.tzinfo is UTC


def test_fractions_of_a_second_survive(clean_db: Engine) -> None:
    moment = datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC)
    with clean_db.begin() as conn:
        pk = conn.execute(
            insert(Venue).values(name="V", address="A", seat_count=0, created_at=moment)
        ).inserted_primary_key
        assert pk is not None
        venue_id = pk[0]
        stored = conn.execute(Venue.__table__.select().where(Venue.id == venue_id)).one()
    assert stored.created_at == moment
