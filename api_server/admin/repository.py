"""Admin writes. Callers own the transaction (the request's session); we only flush."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.orm import Session

from shared.db.models import Performance, PerformanceSession, Seat, Venue


def add_venue(db: Session, *, name: str, address: str, seats: list[dict[str, Any]]) -> Venue:
    """Insert a venue and its seats (one multi-row insert: venues can have many thousands)."""
    venue = Venue(name=name, address=address, seat_count=len(seats))
    db.add(venue)
    db.flush()
    db.execute(insert(Seat), [{**s, "venue_id": venue.id} for s in seats])
    return venue


def seats_of(db: Session, venue_id: int) -> Sequence[Row[int, str, str, Decimal]]:
    """``(seat_id, label, grade, price)`` of a venue, in creation order."""
    stmt = (
        select(Seat.id, Seat.label, Seat.grade, Seat.price)
        .where(Seat.venue_id == venue_id)
        .order_by(Seat.id)
    )
    return db.execute(stmt).all()


def add_performance(db: Session, *, title: str, description: str, venue_id: int) -> Performance:
    """Insert a performance."""
    perf = Performance(title=title, description=description, venue_id=venue_id)
    db.add(perf)
    db.flush()
    return perf


def add_session(
    db: Session,
    *,
    performance_id: int,
    starts_at: datetime,
    booking_opens_at: datetime,
    max_active: int,
    admit_per_second: float,
    pre_queue_opens_at: datetime | None = None,
    shuffle_at_open: bool = False,
) -> PerformanceSession:
    """Insert a session."""
    session = PerformanceSession(
        performance_id=performance_id,
        starts_at=starts_at,
        booking_opens_at=booking_opens_at,
        queue_max_active=max_active,
        queue_admit_per_second=admit_per_second,
        queue_pre_queue_opens_at=pre_queue_opens_at,
        queue_shuffle_at_open=shuffle_at_open,
    )
    db.add(session)
    db.flush()
    return session
