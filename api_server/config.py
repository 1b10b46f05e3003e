"""api_server settings: the common ones plus what only the query side needs."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class Settings(CommonSettings):
    """Settings of api_server (environment prefix ``BOXOFFICE_``)."""

    # Reads (GET routes) go here when set, e.g. a MySQL replica; writes always go to
    # ``database_url``. Unset: reads use the primary too.
    read_database_url: str | None = None
    # Reads fall back to the primary while the replica is unreachable, not replicating, or
    # more than this many seconds behind (api_server/replica.py says why); 0 keeps reads on
    # the replica whatever its state.
    read_replica_max_lag_s: float = Field(default=30.0, ge=0)
    # How often the replica's reachability and lag are sampled (never per request).
    read_replica_check_interval_s: float = Field(default=2.0, gt=0)
    # A bound on one admin request, so a typo cannot create millions of seat rows.
    max_venue_seats: int = Field(default=100_000, ge=1)
