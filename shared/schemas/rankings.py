"""Read-side payloads: rankings and statistics."""

from __future__ import annotations

from pydantic import BaseModel


class RankingEntry(BaseModel):
    """One line of a session's ranking."""

    rank: int
    user_id: str
    nickname: str
    completion_ms: int
    seat_count: int
    queue_position: int | None


class RankingRead(BaseModel):
    """A session's ranking, rank ascending."""

    session_id: int
    items: list[RankingEntry]


class SessionStats(BaseModel):
    """A session's sales statistics from the read side."""

    session_id: int
    seat_count: int
    sold_count: int
    available_count: int
    reservation_count: int
    median_completion_ms: float | None
