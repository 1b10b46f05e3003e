"""Admin routes (``X-Admin-Token``): create venues, performances and sessions."""

from __future__ import annotations

from fastapi import APIRouter

from api_server.admin import service
from api_server.admin.schemas import (
    PerformanceCreate,
    PerformanceCreated,
    SessionCreate,
    SessionRead,
    VenueCreate,
    VenueCreated,
)
from api_server.dependencies import AdminDep, IdPath, SessionDep, SettingsDep
from shared.schemas.common import problem_responses

router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 403, 413, 422),
)


@router.post("/venues", status_code=201)
def create_venue(db: SessionDep, settings: SettingsDep, body: VenueCreate) -> VenueCreated:
    """Create a venue and its seat map (labels ``A-1`` … per row)."""
    return service.create_venue(db=db, body=body, max_seats=settings.max_venue_seats)


@router.post("/performances", status_code=201, responses=problem_responses(404))
def create_performance(db: SessionDep, body: PerformanceCreate) -> PerformanceCreated:
    """Create a performance in an existing venue."""
    return service.create_performance(db=db, body=body)


@router.post(
    "/performances/{performance_id}/sessions", status_code=201, responses=problem_responses(404)
)
def create_session(
    db: SessionDep, settings: SettingsDep, performance_id: IdPath, body: SessionCreate
) -> SessionRead:
    """Create a session of a performance (queue policy defaults from settings)."""
    return service.create_session(
        db=db, performance_id=performance_id, body=body, settings=settings
    )
