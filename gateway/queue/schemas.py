"""Waiting-room payloads and the internal records the service passes around."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.schemas.queue import QueueState, QueueStatus

__all__ = ["QueuePolicy", "QueueState", "QueueStatus", "QueueView", "SessionFacts", "TickResult"]

ViewState = Literal["pre_queue", "waiting", "admitted", "expired", "sold_out", "none", "early"]


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How fast a session's queue admits: at most ``max_active`` admitted-and-unfinished
    users, at most ``admit_per_second`` new admissions."""

    max_active: int
    admit_per_second: float


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the queue needs to know about a session (from api_server, cached briefly)."""

    session_id: int
    booking_opens_at: datetime
    seat_count: int
    policy: QueuePolicy
    pre_queue_opens_at: datetime | None = None
    shuffle_at_open: bool = True


@dataclass(frozen=True, slots=True)
class QueueView:
    """One member's raw state as the status script saw it."""

    state: ViewState
    seq: int  # the line number: 1-based place in line order (0 when unknown)
    rank: int  # 0-based rank among the waiting
    admitted_s: int
    expires_s: int
    active: int
    alog_len: int  # admissions recorded in the recent-admissions log
    alog_oldest_ms: int
    now_ms: int
    version: int  # the session's change counter
    draw_rank: int | None = None  # 1-based place among the pre-queue, after the draw


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one admission step did."""

    admitted: int
    expired_admissions: int
    expired_waiters: int
    active: int
    waiting: int
    version: int
    next_ms: int  # > 0: the rate limit allows the next admission in this many ms
    sold_out: bool
    pre_queue: int = 0  # entrants of the pre-queue (0: none, or not closed yet)
    drawn: bool = False  # the pre-queue has been placed in draw order
