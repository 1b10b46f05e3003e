"""Admin use cases: validate what the schemas cannot, then write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from api_server.admin import repository as repo
from api_server.admin.schemas import (
    PerformanceCreate,
    PerformanceCreated,
    SeatRead,
    SessionCreate,
    SessionRead,
    VenueCreate,
    VenueCreated,
)
from api_server.catalog import repository as catalog_repo
from api_server.catalog.service import session_reads
from api_server.config import Settings
from api_server.errors import NotFound, Unprocessable

# Dates the database stores on every backend (MySQL DATETIME ends at year 9999, and a UTC
# conversion near the ends can overflow); anything outside is a typo, not a show date.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _invalid(loc: list[str | int], msg: str) -> Unprocessable:
    return Unprocessable(
        "The request has invalid fields.", errors=[{"loc": loc, "msg": msg, "type": "value_error"}]
    )


def create_venue(*, db: Session, body: VenueCreate, max_seats: int) -> VenueCreated:
    """A venue with seats labelled ``<row>-<n>`` (n from 1), section by section."""
    seats: list[dict[str, Any]] = []
    seen_rows: set[str] = set()
    for i, section in enumerate(body.sections):
        for row in section.rows:
            if row in seen_rows:  # labels are unique per venue
                raise _invalid(["body", "sections", i, "rows"], f"row {row!r} appears twice")
            seen_rows.add(row)
        if len(seats) + len(section.rows) * section.seats_per_row > max_seats:
            raise _invalid(["body", "sections"], f"a venue has at most {max_seats} seats")
        seats.extend(
            {
                "label": f"{row}-{n}",
                "row": row,
                "number": n,
                "grade": section.grade,
                "price": section.price,
            }
            for row in section.rows
            for n in range(1, section.seats_per_row + 1)
        )
    venue = repo.add_venue(db, name=body.name, address=body.address, seats=seats)
    return VenueCreated(
        id=venue.id,
        name=venue.name,
        address=venue.address,
        seat_count=venue.seat_count,
        seats=[
            SeatRead(seat_id=sid, label=label, grade=grade, price=price)
            for sid, label, grade, price in repo.seats_of(db, venue.id)
        ],
    )


def create_performance(*, db: Session, body: PerformanceCreate) -> PerformanceCreated:
    """A performance in an existing venue (unknown venue → 404)."""
    if catalog_repo.get_venue(db, body.venue_id) is None:
        raise NotFound(f"Venue {body.venue_id} does not exist.")
    perf = repo.add_performance(
        db, title=body.title, description=body.description, venue_id=body.venue_id
    )
    return PerformanceCreated.model_validate(perf)


def create_session(
    *, db: Session, performance_id: int, body: SessionCreate, settings: Settings
) -> SessionRead:
    """A session of an existing performance; the queue policy defaults from settings."""
    perf = catalog_repo.get_performance(db, performance_id)
    if perf is None:
        raise NotFound(f"Performance {performance_id} does not exist.")
    for field in ("starts_at", "booking_opens_at"):
        if not EARLIEST <= getattr(body, field) < LATEST:
            raise _invalid(["body", field], f"must be between {EARLIEST:%Y} and {LATEST:%Y}")
    # Stored and shown in UTC; the response must not echo the client's offset.
    starts_at = body.starts_at.astimezone(UTC)
    booking_opens_at = body.booking_opens_at.astimezone(UTC)
    if booking_opens_at > starts_at:
        raise _invalid(["body", "booking_opens_at"], "booking must open before the session starts")
    queue = body.queue
    pre_queue_opens_at = None
    if queue is not None and queue.pre_queue_opens_at is not None:
        if not EARLIEST <= queue.pre_queue_opens_at < LATEST:
            raise _invalid(
                ["body", "queue", "pre_queue_opens_at"],
                f"must be between {EARLIEST:%Y} and {LATEST:%Y}",
            )
        pre_queue_opens_at = queue.pre_queue_opens_at.astimezone(UTC)
        if pre_queue_opens_at >= booking_opens_at:
            raise _invalid(
                ["body", "queue", "pre_queue_opens_at"], "the pre-queue must open before booking"
            )
    session = repo.add_session(
        db,
        performance_id=perf.id,
        starts_at=starts_at,
        booking_opens_at=booking_opens_at,
        max_active=queue.max_active if queue else settings.queue_default_max_active,
        admit_per_second=(
            queue.admit_per_second if queue else settings.queue_default_admit_per_second
        ),
        pre_queue_opens_at=pre_queue_opens_at,
        shuffle_at_open=bool(queue and queue.shuffle_at_open),
    )
    return session_reads(db=db, venue_id=perf.venue_id, sessions=[session])[0]
