"""api_server settings: the common ones plus what only the query side needs."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class Settings(CommonSettings):
    """Settings of api_server (environment prefix ``BOXOFFICE_``)."""

    # Reads (GET routes) go here when set, e.g. a MySQL replica; writes always go to
    # ``database_url``. Unset: reads use the primary too.
    read_database_url: str | None = None
    # A bound on one admin request, so a typo cannot create millions of seat rows.
    max_venue_seats: int = Field(default=100_000, ge=1)
