"""Worker settings (``BOXOFFICE_WORKER_*``); command-line options override them."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class WorkerSettings(CommonSettings):
    """What the worker reads from the environment on top of the common settings."""

    # Unset: ``<hostname>-<pid>``, distinct for every process (several workers may run).
    worker_consumer: str | None = None
    worker_batch_size: int = Field(default=1000, ge=1, le=50_000)
    worker_block_ms: int = Field(default=500, ge=1)
    # Pending entries idle this long (their consumer died, or applying them failed) are
    # re-claimed; each claim counts as one more attempt.
    worker_claim_idle_ms: int = Field(default=30_000, ge=1)
    worker_max_attempts: int = Field(default=5, ge=1)
    worker_discover_interval_s: float = Field(default=2.0, gt=0)
    worker_backoff_base_s: float = Field(default=0.2, gt=0)
    worker_backoff_cap_s: float = Field(default=10.0, gt=0)
    worker_metrics_host: str = "127.0.0.1"
    # 0 picks a free port (logged); a negative value disables the HTTP endpoint.
    worker_metrics_port: int = 8003
