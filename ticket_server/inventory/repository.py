"""Catalog reads ticket_server needs: a session's facts and its venue's seats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from shared.db.models import Performance, PerformanceSession, Seat


@dataclass(frozen=True, slots=True)
class SeatRow:
    """One seat with what the seat map shows."""

    seat_id: int
    label: str
    grade: str
    price: str


@dataclass(frozen=True, slots=True)
class SessionSeats:
    """What loading a session's seat map needs."""

    session_id: int
    booking_opens_at: datetime
    seats: list[SeatRow]


def load_session_seats(engine: Engine, session_id: int) -> SessionSeats | None:
    """The session's opening time and seats, or ``None`` for an unknown session.

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
    return SessionSeats(
        session_id=session_id,
        booking_opens_at=row.booking_opens_at,
        seats=[SeatRow(s.id, s.label, s.grade, str(s.price)) for s in seats],
    )
