"""Catalog reads: turn rows into the public payloads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from api_server.catalog import repository as repo
from api_server.catalog.schemas import (
    GradeRead,
    Page,
    PerformanceRead,
    PerformanceSummary,
    QueuePolicy,
    SessionRead,
    VenueRead,
)
from api_server.errors import NotFound
from shared.db.base import utcnow
from shared.db.models import PerformanceSession


def list_venues(*, db: Session, offset: int, limit: int) -> Page[VenueRead]:
    """A page of venues."""
    items = [VenueRead.model_validate(v) for v in repo.list_venues(db, offset=offset, limit=limit)]
    return Page[VenueRead](items=items, total=repo.count_venues(db), offset=offset, limit=limit)


def get_venue(*, db: Session, venue_id: int) -> VenueRead:
    """One venue, or 404."""
    venue = repo.get_venue(db, venue_id)
    if venue is None:
        raise NotFound(f"Venue {venue_id} does not exist.")
    return VenueRead.model_validate(venue)


def list_performances(
    *, db: Session, q: str | None, offset: int, limit: int
) -> Page[PerformanceSummary]:
    """A page of performances, filtered by a title substring."""
    rows = repo.list_performances(db, q=q, offset=offset, limit=limit, now=utcnow())
    items = [
        PerformanceSummary(id=pid, title=title, venue_id=venue_id, next_session_at=next_at)
        for pid, title, venue_id, next_at in rows
    ]
    total = repo.count_performances(db, q=q)
    return Page[PerformanceSummary](items=items, total=total, offset=offset, limit=limit)


def session_reads(
    *, db: Session, venue_id: int, sessions: Sequence[PerformanceSession]
) -> list[SessionRead]:
    """Session payloads of sessions that play in ``venue_id`` (grades queried once)."""
    grades = [
        GradeRead(grade=g, price=price, seat_count=n) for g, price, n in repo.grades(db, venue_id)
    ]
    seat_count = sum(g.seat_count for g in grades)
    sold = repo.sold_counts(db, [s.id for s in sessions])
    return [
        SessionRead(
            id=s.id,
            performance_id=s.performance_id,
            starts_at=s.starts_at,
            booking_opens_at=s.booking_opens_at,
            seat_count=seat_count,
            sold_count=sold.get(s.id, 0),
            grades=grades,
            queue=QueuePolicy(
                max_active=s.queue_max_active,
                admit_per_second=float(s.queue_admit_per_second),
                pre_queue_opens_at=s.queue_pre_queue_opens_at,
                shuffle_at_open=s.queue_shuffle_at_open,
            ),
        )
        for s in sessions
    ]


def get_performance(*, db: Session, performance_id: int) -> PerformanceRead:
    """A performance with its venue and sessions, or 404."""
    perf = repo.get_performance(db, performance_id)
    if perf is None:
        raise NotFound(f"Performance {performance_id} does not exist.")
    sessions = repo.sessions_of(db, perf.id)
    return PerformanceRead(
        id=perf.id,
        title=perf.title,
        description=perf.description,
        venue=VenueRead.model_validate(perf.venue),
        sessions=session_reads(db=db, venue_id=perf.venue_id, sessions=sessions),
    )


def get_session(*, db: Session, session_id: int) -> SessionRead:
    """A session with grades, sold count and queue policy, or 404."""
    found = repo.session_and_venue(db, session_id)
    if found is None:
        raise NotFound(f"Session {session_id} does not exist.")
    session, venue_id = found
    return session_reads(db=db, venue_id=venue_id, sessions=[session])[0]
