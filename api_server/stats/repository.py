"""Statistics queries, portable across MariaDB/MySQL and SQLite (no window or
percentile functions)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import Reservation, ReservationSeat, Seat

CONFIRMED = "confirmed"


def seat_count(db: Session, *, venue_id: int) -> int:
    """Seats of a venue."""
    return db.scalar(select(func.count()).select_from(Seat).where(Seat.venue_id == venue_id)) or 0


def sold_count(db: Session, *, session_id: int) -> int:
    """Seats held by live reservations of a session."""
    stmt = (
        select(func.count())
        .select_from(ReservationSeat)
        .where(ReservationSeat.session_id == session_id)
    )
    return db.scalar(stmt) or 0


def confirmed_count(db: Session, *, session_id: int) -> int:
    """Confirmed (not cancelled) reservations of a session."""
    stmt = (
        select(func.count())
        .select_from(Reservation)
        .where(Reservation.session_id == session_id, Reservation.status == CONFIRMED)
    )
    return db.scalar(stmt) or 0


def median_completion_ms(db: Session, *, session_id: int, count: int) -> float | None:
    """Median ``completion_ms`` of the ``count`` confirmed reservations, None when none.

    The middle one or two values by ORDER BY/OFFSET: the same SQL on every backend, and it
    reads at most two rows after the index-ordered skip.
    """
    if count <= 0:
        return None
    stmt = (
        select(Reservation.completion_ms)
        .where(Reservation.session_id == session_id, Reservation.status == CONFIRMED)
        .order_by(Reservation.completion_ms)
        .offset((count - 1) // 2)
        .limit(1 if count % 2 else 2)
    )
    middle = list(db.scalars(stmt))
    if not middle:  # the rows changed between the count and this query
        return None
    return sum(middle) / len(middle)
