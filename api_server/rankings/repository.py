"""Ranking queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import Ranking


def top(db: Session, *, session_id: int, limit: int) -> Sequence[Ranking]:
    """The first ``limit`` entries of a session's ranking, rank ascending."""
    stmt = (
        select(Ranking).where(Ranking.session_id == session_id).order_by(Ranking.rank).limit(limit)
    )
    return db.scalars(stmt).all()
