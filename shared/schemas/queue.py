"""Waiting-room payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

QueueState = Literal["waiting", "admitted", "expired", "sold_out"]


class QueueStatus(BaseModel):
    """Where a user stands in a session's queue."""

    session_id: int
    status: QueueState
    position: int | None
    ahead: int
    estimated_wait_s: float | None
    admission_token: str | None
    admission_expires_at: datetime | None
