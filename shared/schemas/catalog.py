"""Catalog payloads (venues, performances, sessions) and the admin create bodies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.ids import MAX_ID
from shared.schemas.common import Price

Name = Field(min_length=1, max_length=200)
MIN_ADMIT_PER_SECOND = 0.001


class VenueRead(BaseModel):
    """A venue as the catalog shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    address: str
    seat_count: int


class SeatRead(BaseModel):
    """A seat as created by the admin API."""

    seat_id: int
    label: str
    grade: str
    price: Price


class VenueCreated(VenueRead):
    """The created venue with its seats."""

    seats: list[SeatRead]


class SectionCreate(BaseModel):
    """A block of rows of one grade and price."""

    model_config = ConfigDict(extra="forbid")

    grade: str = Field(min_length=1, max_length=32)
    price: Decimal = Field(ge=0, le=Decimal("9999999999.99"), decimal_places=2)
    rows: list[str] = Field(min_length=1, max_length=200)
    seats_per_row: int = Field(ge=1, le=500)

    @field_validator("rows")
    @classmethod
    def _rows_valid(cls, rows: list[str]) -> list[str]:
        for r in rows:
            if not 1 <= len(r) <= 16 or not r.isalnum():
                raise ValueError("row names are 1..16 letters or digits")
        if len(set(rows)) != len(rows):
            raise ValueError("row names must be unique within a section")
        return rows


class VenueCreate(BaseModel):
    """Admin: a new venue and its seat map."""

    model_config = ConfigDict(extra="forbid")

    name: str = Name
    address: str = Field(min_length=1, max_length=500)
    sections: list[SectionCreate] = Field(min_length=1, max_length=50)


class PerformanceCreate(BaseModel):
    """Admin: a new performance."""

    model_config = ConfigDict(extra="forbid")

    title: str = Name
    description: str = Field(default="", max_length=10_000)
    venue_id: int = Field(ge=1, le=MAX_ID)


class QueuePolicy(BaseModel):
    """A session's waiting-room policy."""

    model_config = ConfigDict(extra="forbid")

    max_active: int = Field(ge=1, le=1_000_000)
    # The column keeps thousandths (NUMERIC(10, 3)) under CHECK > 0: a smaller rate would be
    # stored as 0 and refused by the database.
    admit_per_second: float = Field(ge=MIN_ADMIT_PER_SECOND, le=100_000)
    pre_queue_opens_at: AwareDatetime | None = Field(
        default=None, description="Joining opens here, before booking: the pre-queue."
    )
    shuffle_at_open: bool | None = Field(
        default=None,
        description="Put the pre-queue in line by a verifiable draw at opening (default: "
        "true when there is a pre-queue), else in join order.",
    )

    @model_validator(mode="after")
    def _shuffle_default(self) -> QueuePolicy:
        if self.shuffle_at_open is None:
            self.shuffle_at_open = self.pre_queue_opens_at is not None
        return self


class SessionCreate(BaseModel):
    """Admin: a new session of a performance."""

    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    booking_opens_at: AwareDatetime
    queue: QueuePolicy | None = None


class GradeRead(BaseModel):
    """Seats and price of one grade in a session."""

    grade: str
    price: Price
    seat_count: int


class SessionRead(BaseModel):
    """A session with its grades and live-ish sold count (from the read side)."""

    id: int
    performance_id: int
    starts_at: datetime
    booking_opens_at: datetime
    seat_count: int
    sold_count: int
    grades: list[GradeRead]
    queue: QueuePolicy


class PerformanceSummary(BaseModel):
    """A performance in the list."""

    id: int
    title: str
    venue_id: int
    next_session_at: datetime | None


class PerformanceRead(BaseModel):
    """A performance with its venue and sessions."""

    id: int
    title: str
    description: str
    venue: VenueRead
    sessions: list[SessionRead]


class PerformanceCreated(BaseModel):
    """The created performance."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str
    venue_id: int
