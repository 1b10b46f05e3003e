"""Statistics routes."""

from __future__ import annotations

from fastapi import APIRouter

from api_server.dependencies import IdPath, ReadSessionDep
from api_server.stats import service
from api_server.stats.schemas import SessionStats
from shared.schemas.common import problem_responses

router = APIRouter(prefix="/api/stats", tags=["stats"])


@router.get("/sessions/{session_id}", responses=problem_responses(404, 422))
def get_session_stats(db: ReadSessionDep, session_id: IdPath) -> SessionStats:
    """Seat, sales and speed figures of a session (lags booking by the worker's delay)."""
    return service.session_stats(db=db, session_id=session_id)
