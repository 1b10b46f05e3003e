"""Ticketing payloads: seat map, holds, reservations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.ids import MAX_ID
from shared.schemas.common import Price

SeatState = Literal["available", "held", "sold"]


class SeatStatus(BaseModel):
    """One seat of the live seat map."""

    seat_id: int
    label: str
    grade: str
    price: Price
    status: SeatState


class SeatMap(BaseModel):
    """A session's live seat map."""

    session_id: int
    seats: list[SeatStatus]


class HoldCreate(BaseModel):
    """Body of a hold request."""

    model_config = ConfigDict(extra="forbid")

    seat_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=100)


class HoldRead(BaseModel):
    """A hold on seats, until ``expires_at``."""

    hold_id: str
    session_id: int
    seat_ids: list[int]
    expires_at: datetime


class ReservationCreate(BaseModel):
    """Body of a reservation request: confirm a hold."""

    model_config = ConfigDict(extra="forbid")

    hold_id: str = Field(min_length=1, max_length=64)


class ReservationRead(BaseModel):
    """A reservation."""

    reservation_id: str
    session_id: int
    user_id: str
    seat_ids: list[int]
    status: Literal["confirmed", "cancelled"]
    rank: int
    completion_ms: int
    queue_position: int | None
    created_at: datetime
