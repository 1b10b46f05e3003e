"""A session's sales statistics from the read side."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api_server.catalog import repository as catalog_repo
from api_server.errors import NotFound
from api_server.stats import repository as repo
from api_server.stats.schemas import SessionStats


def session_stats(*, db: Session, session_id: int) -> SessionStats:
    """Seats, sales and the median completion time of a session, or 404."""
    found = catalog_repo.session_and_venue(db, session_id)
    if found is None:
        raise NotFound(f"Session {session_id} does not exist.")
    _, venue_id = found
    seats = repo.seat_count(db, venue_id=venue_id)
    sold = repo.sold_count(db, session_id=session_id)
    confirmed = repo.confirmed_count(db, session_id=session_id)
    return SessionStats(
        session_id=session_id,
        seat_count=seats,
        sold_count=sold,
        available_count=max(seats - sold, 0),
        reservation_count=confirmed,
        median_completion_ms=repo.median_completion_ms(db, session_id=session_id, count=confirmed),
    )
