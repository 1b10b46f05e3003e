"""Helpers of the worker tests: a small catalog, events in the stream encoding, DB views."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared import keys
from shared.db.models import (
    Performance,
    PerformanceSession,
    Ranking,
    Reservation,
    ReservationSeat,
    Seat,
    Venue,
)
from shared.events import ReservationCancelled, ReservationCompleted, to_fields

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
_ids = itertools.count(1)


@dataclass(frozen=True)
class Catalog:
    """Two sessions of one performance in a venue; ``seats`` are the venue's seat ids."""

    session_ids: tuple[int, int]
    seats: tuple[int, ...]


def make_catalog(engine: Engine, seat_count: int = 400) -> Catalog:
    """Insert a venue with ``seat_count`` seats, a performance and two sessions."""
    with Session(engine) as s:
        venue = Venue(name="Hall", address="1 Main St", seat_count=seat_count)
        venue.seats = [
            Seat(label=f"A-{i}", row="A", number=i, grade="R", price=Decimal("10.00"))
            for i in range(1, seat_count + 1)
        ]
        perf = Performance(title="Show", description="", venue=venue)
        sessions = [
            PerformanceSession(
                performance=perf,
                starts_at=T0 + timedelta(days=7),
                booking_opens_at=T0,
                queue_max_active=100,
                queue_admit_per_second=10.0,
            )
            for _ in range(2)
        ]
        s.add_all([venue, perf, *sessions])
        s.commit()
        return Catalog(
            session_ids=(sessions[0].id, sessions[1].id),
            seats=tuple(seat.id for seat in venue.seats),
        )


def completed(
    session_id: int, rank: int, seat_ids: list[int], *, rid: str | None = None
) -> ReservationCompleted:
    """A ``reservation.completed`` event."""
    return ReservationCompleted(
        reservation_id=rid or f"r{next(_ids)}-{rank}",
        session_id=session_id,
        user_id=f"u{rank}",
        nickname=f"nick{rank}",
        seat_ids=seat_ids,
        rank=rank,
        completion_ms=rank * 10,
        queue_position=rank,
        created_at=T0 + timedelta(milliseconds=rank * 10),
    )


def cancelled(ev: ReservationCompleted) -> ReservationCancelled:
    """The cancellation of ``ev``."""
    return ReservationCancelled(
        reservation_id=ev.reservation_id,
        session_id=ev.session_id,
        user_id=ev.user_id,
        seat_ids=ev.seat_ids,
        cancelled_at=ev.created_at + timedelta(seconds=5),
    )


def push(client: redis.Redis, *events: ReservationCompleted | ReservationCancelled) -> list[str]:
    """XADD events to their session's stream (as the Lua scripts do); returns entry ids."""
    pipe = client.pipeline(transaction=False)
    for ev in events:
        pipe.sadd(keys.EVENT_STREAMS, ev.session_id)
        pipe.xadd(keys.events_stream(ev.session_id), to_fields(ev))  # type: ignore[arg-type]
    return [r for r in pipe.execute() if isinstance(r, str)]


def dead_letters(client: redis.Redis) -> list[tuple[str, dict[str, str]]]:
    """The dead-letter stream's entries (``client`` decodes responses)."""
    entries: Any = client.xrange(keys.DEAD_LETTER_STREAM)
    return [(str(eid), dict(fields)) for eid, fields in entries]


@dataclass(frozen=True)
class DbState:
    """What the database holds, in comparable form."""

    reservations: dict[str, tuple[str, int, int]]  # id -> (status, rank, seat_count)
    seats: set[tuple[int, int, str]]  # (session, seat, reservation)
    rankings: dict[str, tuple[int, int, str]]  # reservation id -> (session, rank, nickname)


def db_state(engine: Engine) -> DbState:
    """Read every reservation, seat and ranking row."""
    with engine.connect() as conn:
        res = {
            r.id: (r.status, r.rank, r.seat_count)
            for r in conn.execute(
                select(Reservation.id, Reservation.status, Reservation.rank, Reservation.seat_count)
            )
        }
        seats = {
            (r.session_id, r.seat_id, r.reservation_id)
            for r in conn.execute(
                select(
                    ReservationSeat.session_id,
                    ReservationSeat.seat_id,
                    ReservationSeat.reservation_id,
                )
            )
        }
        ranks = {
            r.reservation_id: (r.session_id, r.rank, r.nickname)
            for r in conn.execute(
                select(Ranking.reservation_id, Ranking.session_id, Ranking.rank, Ranking.nickname)
            )
        }
    return DbState(res, seats, ranks)


def expected_state(events: Sequence[ReservationCompleted | ReservationCancelled]) -> DbState:
    """What the database must hold after applying ``events`` (any order, any repetition)."""
    done = {e.reservation_id: e for e in events if isinstance(e, ReservationCompleted)}
    gone = {e.reservation_id for e in events if isinstance(e, ReservationCancelled)}
    res = {
        rid: ("cancelled" if rid in gone else "confirmed", e.rank, len(e.seat_ids))
        for rid, e in done.items()
    }
    live = [e for rid, e in done.items() if rid not in gone]
    seats = {(e.session_id, s, e.reservation_id) for e in live for s in e.seat_ids}
    ranks = {e.reservation_id: (e.session_id, e.rank, e.nickname) for e in live}
    return DbState(res, seats, ranks)
