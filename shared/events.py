"""Reservation events as they travel on the per-session Redis streams.

Lua writes them as flat stream fields (Lua has no datetime or JSON-schema machinery);
these models are the one reading of those fields for every consumer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

COMPLETED: Literal["reservation.completed"] = "reservation.completed"
CANCELLED: Literal["reservation.cancelled"] = "reservation.cancelled"


def _ms_to_dt(value: object) -> object:
    # Lua writes epoch milliseconds (Redis server time).
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    return value


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return [int(v) for v in value.split(",") if v]
    return value


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    reservation_id: str = Field(min_length=1, max_length=64)
    session_id: int
    user_id: str = Field(min_length=1, max_length=64)
    seat_ids: list[int] = Field(min_length=1)

    _split = field_validator("seat_ids", mode="before")(_split_ids)


class ReservationCompleted(_Event):
    """A reservation was confirmed (seats sold, rank assigned)."""

    type: Literal["reservation.completed"] = COMPLETED
    nickname: str
    rank: int = Field(ge=1)
    completion_ms: int
    queue_position: int | None = None
    created_at: datetime

    _created = field_validator("created_at", mode="before")(_ms_to_dt)

    @field_validator("queue_position", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", b"") else value


class ReservationCancelled(_Event):
    """A confirmed reservation was cancelled (seats available again, ranking entry gone)."""

    type: Literal["reservation.cancelled"] = CANCELLED
    cancelled_at: datetime

    _cancelled = field_validator("cancelled_at", mode="before")(_ms_to_dt)


ReservationEvent = Annotated[
    ReservationCompleted | ReservationCancelled, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[ReservationCompleted | ReservationCancelled] = TypeAdapter(ReservationEvent)


def parse_event(
    fields: dict[str, str] | dict[bytes, bytes],
) -> ReservationCompleted | ReservationCancelled:
    """Read one stream entry's fields (raises ``pydantic.ValidationError`` on a bad entry)."""
    data = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }
    return _ADAPTER.validate_python(data)


def to_fields(event: ReservationCompleted | ReservationCancelled) -> dict[str, str]:
    """Flat stream fields of an event: the encoding the Lua scripts write (for tests/tools)."""
    out: dict[str, str] = {
        "type": event.type,
        "reservation_id": event.reservation_id,
        "session_id": str(event.session_id),
        "user_id": event.user_id,
        "seat_ids": ",".join(str(s) for s in event.seat_ids),
    }
    if isinstance(event, ReservationCompleted):
        out |= {
            "nickname": event.nickname,
            "rank": str(event.rank),
            "completion_ms": str(event.completion_ms),
            "queue_position": "" if event.queue_position is None else str(event.queue_position),
            "created_at": str(int(event.created_at.timestamp() * 1000)),
        }
    else:
        out["cancelled_at"] = str(int(event.cancelled_at.timestamp() * 1000))
    return out
