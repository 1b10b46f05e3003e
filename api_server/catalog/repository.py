"""Catalog queries (SQLAlchemy 2 ``select()``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Row, func, select, true
from sqlalchemy.orm import Session

from shared.db.models import Performance, PerformanceSession, ReservationSeat, Seat, Venue


def count_venues(db: Session) -> int:
    """Number of venues."""
    return db.scalar(select(func.count()).select_from(Venue)) or 0


def list_venues(db: Session, *, offset: int, limit: int) -> Sequence[Venue]:
    """One page of venues, oldest first."""
    return db.scalars(select(Venue).order_by(Venue.id).offset(offset).limit(limit)).all()


def get_venue(db: Session, venue_id: int) -> Venue | None:
    """A venue by id."""
    return db.get(Venue, venue_id)


def grades(db: Session, venue_id: int) -> Sequence[Row[str, Decimal, int]]:
    """``(grade, price, seat_count)`` of a venue's seats, dearest first."""
    stmt = (
        select(Seat.grade, Seat.price, func.count())
        .where(Seat.venue_id == venue_id)
        .group_by(Seat.grade, Seat.price)
        .order_by(Seat.price.desc(), Seat.grade)
    )
    return db.execute(stmt).all()


def sold_counts(db: Session, session_ids: Sequence[int]) -> dict[int, int]:
    """Seats held by live reservations, per session (sessions with none are absent)."""
    if not session_ids:
        return {}
    stmt = (
        select(ReservationSeat.session_id, func.count())
        .where(ReservationSeat.session_id.in_(session_ids))
        .group_by(ReservationSeat.session_id)
    )
    return dict(db.execute(stmt).all())


def _title_filter(q: str | None) -> ColumnElement[bool]:
    if not q:
        return true()
    # autoescape: the user's % and _ are literal characters, not wildcards.
    return Performance.title.icontains(q, autoescape=True)


def count_performances(db: Session, *, q: str | None) -> int:
    """Number of performances whose title contains ``q`` (case-insensitive)."""
    stmt = select(func.count()).select_from(Performance).where(_title_filter(q))
    return db.scalar(stmt) or 0


def list_performances(
    db: Session, *, q: str | None, offset: int, limit: int, now: datetime
) -> Sequence[Row[int, str, int, datetime]]:
    """One page of ``(id, title, venue_id, next_session_at)``, oldest first;
    ``next_session_at`` is None when no session is upcoming."""
    next_session = (
        select(func.min(PerformanceSession.starts_at))
        .where(
            PerformanceSession.performance_id == Performance.id,
            PerformanceSession.starts_at >= now,
        )
        .scalar_subquery()
    )
    stmt = (
        select(Performance.id, Performance.title, Performance.venue_id, next_session)
        .where(_title_filter(q))
        .order_by(Performance.id)
        .offset(offset)
        .limit(limit)
    )
    return db.execute(stmt).all()


def get_performance(db: Session, performance_id: int) -> Performance | None:
    """A performance by id."""
    return db.get(Performance, performance_id)


def sessions_of(db: Session, performance_id: int) -> Sequence[PerformanceSession]:
    """A performance's sessions, earliest first."""
    stmt = (
        select(PerformanceSession)
        .where(PerformanceSession.performance_id == performance_id)
        .order_by(PerformanceSession.starts_at, PerformanceSession.id)
    )
    return db.scalars(stmt).all()


def get_session(db: Session, session_id: int) -> PerformanceSession | None:
    """A session by id."""
    return db.get(PerformanceSession, session_id)


def session_and_venue(db: Session, session_id: int) -> tuple[PerformanceSession, int] | None:
    """A session and the venue it plays in (one query), or None for an unknown session."""
    stmt = (
        select(PerformanceSession, Performance.venue_id)
        .join(Performance, PerformanceSession.performance_id == Performance.id)
        .where(PerformanceSession.id == session_id)
    )
    row = db.execute(stmt).first()
    return (row[0], row[1]) if row else None
