"""Ranking routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api_server.dependencies import IdPath, ReadSessionDep
from api_server.rankings import service
from api_server.rankings.schemas import RankingRead
from shared.schemas.common import problem_responses

router = APIRouter(prefix="/api", tags=["rankings"])


@router.get("/sessions/{session_id}/rankings", responses=problem_responses(404, 422))
def get_rankings(
    db: ReadSessionDep,
    session_id: IdPath,
    limit: Annotated[int, Query(ge=1, le=100, description="Entries, 1..100.")] = 10,
) -> RankingRead:
    """Who booked fastest in a session, rank ascending (lags booking by the worker's delay)."""
    return service.ranking(db=db, session_id=session_id, limit=limit)
