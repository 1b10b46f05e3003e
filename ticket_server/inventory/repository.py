"""Database reads ticket_server needs: a session's facts, its venue's seats, and the
reservations the worker already stored (what Redis must not forget after losing its data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from shared.db.models import Performance, PerformanceSession, Reservation, Seat


@dataclass(frozen=True, slots=True)
class SeatRow:
    """One seat with what the seat map shows."""

    seat_id: int
    label: str
    grade: str
    price: str


@dataclass(frozen=True, slots=True)
class StoredReservation:
    """A reservation as the database has it (confirmed or cancelled)."""

    reservation_id: str
    user_id: str
    nickname: str
    status: str
    rank: int
    completion_ms: int
    queue_position: int | None
    seat_ids: list[int]
    created_at: datetime
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionSeats:
    """What loading a session's seat map needs: the catalog, and the reservations already
    stored, so that a seat map rebuilt after Redis lost its data keeps sold seats sold."""

    session_id: int
    booking_opens_at: datetime
    seats: list[SeatRow]
    reservations: list[StoredReservation] = field(default_factory=list)
    # The highest rank ever given in the session (cancelled ones included: ranks are
    # never reused), 0 when none.
    max_rank: int = 0


def load_session_seats(engine: Engine, session_id: int) -> SessionSeats | None:
    """The session's opening time, seats and stored reservations, or ``None`` for an
    unknown session.

    Synchronous (pymysql): call it in a worker thread.
    """
    with engine.connect() as conn:
        row = conn.execute(
            select(PerformanceSession.booking_opens_at, Performance.venue_id)
            .join(Performance, Performance.id == PerformanceSession.performance_id)
            .where(PerformanceSession.id == session_id)
        ).first()
        if row is None:
            return None
        seats = conn.execute(
            select(Seat.id, Seat.label, Seat.grade, Seat.price)
            .where(Seat.venue_id == row.venue_id)
            .order_by(Seat.id)
        ).all()
        # Ranks below 1 are the worker's placeholders (a cancellation stored before its
        # completion): they carry no facts to restore and no rank to continue from.
        # A locking read (MySQL's LOCK IN SHARE MODE; SQLite has none and needs none, having
        # one writer) waits for a worker transaction that has inserted reservations of the
        # session but not committed yet: after Redis lost its data, that batch is nowhere
        # else, and a seat map rebuilt without it would sell its seats again.
        stored = conn.execute(
            select(
                Reservation.id,
                Reservation.user_id,
                Reservation.nickname,
                Reservation.status,
                Reservation.rank,
                Reservation.completion_ms,
                Reservation.queue_position,
                Reservation.seat_ids,
                Reservation.created_at,
                Reservation.cancelled_at,
            )
            .where(Reservation.session_id == session_id, Reservation.rank > 0)
            .order_by(Reservation.rank)
            .with_for_update(read=True)
        ).all()
        reservations = [
            StoredReservation(
                reservation_id=r.id,
                user_id=r.user_id,
                nickname=r.nickname,
                status=r.status,
                rank=r.rank,
                completion_ms=r.completion_ms,
                queue_position=r.queue_position,
                seat_ids=[int(s) for s in r.seat_ids],
                created_at=r.created_at,
                cancelled_at=r.cancelled_at,
            )
            for r in stored
        ]
    return SessionSeats(
        session_id=session_id,
        booking_opens_at=row.booking_opens_at,
        seats=[SeatRow(s.id, s.label, s.grade, str(s.price)) for s in seats],
        reservations=reservations,
        max_rank=max((r.rank for r in reservations), default=0),
    )
