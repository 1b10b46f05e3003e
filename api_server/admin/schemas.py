"""Admin payloads (shared public schemas)."""

from __future__ import annotations

from shared.schemas.catalog import (
    PerformanceCreate,
    PerformanceCreated,
    QueuePolicy,
    SeatRead,
    SectionCreate,
    SessionCreate,
    SessionRead,
    VenueCreate,
    VenueCreated,
)

__all__ = [
    "PerformanceCreate",
    "PerformanceCreated",
    "QueuePolicy",
    "SeatRead",
    "SectionCreate",
    "SessionCreate",
    "SessionRead",
    "VenueCreate",
    "VenueCreated",
]
