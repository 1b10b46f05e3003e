"""Waiting-room payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

QueueState = Literal["pre_queue", "waiting", "admitted", "expired", "sold_out"]


class QueueStatus(BaseModel):
    """Where a user stands in a session's queue."""

    session_id: int
    status: QueueState
    position: int | None
    ahead: int
    estimated_wait_s: float | None
    admission_token: str | None
    admission_expires_at: datetime | None
    draw_rank: int | None = None


class QueueDraw(BaseModel):
    """A pre-queue's draw: the seed's commitment at once, the seed itself after opening."""

    session_id: int
    commitment: str | None
    seed: str | None
    drawn: int
