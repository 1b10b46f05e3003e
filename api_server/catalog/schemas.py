"""Catalog payloads: the shared public schemas (API.md), re-exported for this domain."""

from __future__ import annotations

from shared.schemas.catalog import (
    GradeRead,
    PerformanceRead,
    PerformanceSummary,
    QueuePolicy,
    SessionRead,
    VenueRead,
)
from shared.schemas.common import Page

__all__ = [
    "GradeRead",
    "Page",
    "PerformanceRead",
    "PerformanceSummary",
    "QueuePolicy",
    "SessionRead",
    "VenueRead",
]
