"""A session's ranking: eventually consistent with booking (the worker writes the table)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api_server.catalog import repository as catalog_repo
from api_server.errors import NotFound
from api_server.rankings import repository as repo
from api_server.rankings.schemas import RankingEntry, RankingRead


def ranking(*, db: Session, session_id: int, limit: int) -> RankingRead:
    """The top ``limit`` of a session, or 404 for an unknown session."""
    if catalog_repo.get_session(db, session_id) is None:
        raise NotFound(f"Session {session_id} does not exist.")
    items = [
        RankingEntry(
            rank=r.rank,
            user_id=r.user_id,
            nickname=r.nickname,
            completion_ms=r.completion_ms,
            seat_count=r.seat_count,
            queue_position=r.queue_position,
        )
        for r in repo.top(db, session_id=session_id, limit=limit)
    ]
    return RankingRead(session_id=session_id, items=items)
