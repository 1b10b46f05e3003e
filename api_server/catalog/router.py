"""Public catalog routes: venues, performances, sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api_server.catalog import service
from api_server.catalog.schemas import (
    Page,
    PerformanceRead,
    PerformanceSummary,
    SessionRead,
    VenueRead,
)
from api_server.dependencies import IdPath, Limit, Offset, ReadSessionDep
from shared.schemas.common import problem_responses

router = APIRouter(prefix="/api", tags=["catalog"])


@router.get("/venues", responses=problem_responses(422))
def list_venues(db: ReadSessionDep, offset: Offset = 0, limit: Limit = 20) -> Page[VenueRead]:
    """List venues, oldest first."""
    return service.list_venues(db=db, offset=offset, limit=limit)


@router.get("/venues/{venue_id}", responses=problem_responses(404, 422))
def get_venue(db: ReadSessionDep, venue_id: IdPath) -> VenueRead:
    """One venue."""
    return service.get_venue(db=db, venue_id=venue_id)


@router.get("/performances", responses=problem_responses(422))
def list_performances(
    db: ReadSessionDep,
    offset: Offset = 0,
    limit: Limit = 20,
    q: Annotated[
        str | None,
        # No NUL: SQLite cuts a LIKE pattern there (matching everything); no title has one.
        Query(
            max_length=200,
            pattern="^[^\\x00]*$",
            description="Case-insensitive substring of the title.",
        ),
    ] = None,
) -> Page[PerformanceSummary]:
    """List performances (optionally whose title contains ``q``), oldest first."""
    return service.list_performances(db=db, q=q, offset=offset, limit=limit)


@router.get("/performances/{performance_id}", responses=problem_responses(404, 422))
def get_performance(db: ReadSessionDep, performance_id: IdPath) -> PerformanceRead:
    """One performance with its venue and sessions."""
    return service.get_performance(db=db, performance_id=performance_id)


@router.get("/sessions/{session_id}", responses=problem_responses(404, 422))
def get_session(db: ReadSessionDep, session_id: IdPath) -> SessionRead:
    """One session: times, seats per grade, sold count and queue policy."""
    return service.get_session(db=db, session_id=session_id)
