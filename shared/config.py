"""Settings base shared by every service: environment variables prefixed ``BOXOFFICE_``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789"
DEV_ADMIN_TOKEN = "dev-admin-token"
# HS256 wants a key at least as long as its hash (RFC 7518 3.2): 32 bytes. The admin token is
# held to the same length, so neither can be guessed or brute-forced offline.
MIN_SECRET_CHARS = 32


def split_commas(value: object) -> object:
    """``"a, b,,c"`` → ``["a", "b", "c"]`` for list settings given as one env variable."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# A list setting written comma-separated in the environment (not JSON).
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_commas)]


class CommonSettings(BaseSettings):
    """Settings every process reads. Services subclass this and add their own."""

    model_config = SettingsConfigDict(
        env_prefix="BOXOFFICE_", env_file=".env", extra="ignore", frozen=True
    )

    # Unset means "embedded default": the dev supervisor fills these in for its children.
    database_url: str | None = None
    redis_url: str | None = None
    # standalone | cluster | sentinel; unset: asked of the server (svckit/redis_client.py).
    redis_mode: Literal["standalone", "cluster", "sentinel"] | None = None
    data_dir: str = "data"

    # The defaults are public: ``boxoffice serve`` refuses them (and any secret shorter than
    # MIN_SECRET_CHARS) unless ``allow_insecure_defaults`` says so; ``boxoffice dev`` makes
    # per-install secrets instead. An empty admin token disables the admin API.
    secret_key: str = DEV_SECRET_KEY
    admin_token: str = DEV_ADMIN_TOKEN
    allow_insecure_defaults: bool = False

    api_server_url: str = "http://127.0.0.1:8001"
    ticket_server_url: str = "http://127.0.0.1:8002"
    cors_origins: CommaList = Field(default_factory=list)

    access_token_ttl_s: int = Field(default=3600, ge=1)
    hold_ttl_s: int = Field(default=120, ge=1)
    admission_ttl_s: int = Field(default=600, ge=1)
    queue_heartbeat_timeout_s: int = Field(default=30, ge=1)
    queue_default_max_active: int = Field(default=100, ge=1)
    queue_default_admit_per_second: float = Field(default=10.0, ge=0.001)  # NUMERIC(10, 3)
    max_seats_per_user: int = Field(default=4, ge=1)

    redis_socket_timeout_s: float = Field(default=1.0, gt=0)
    # The edge of every served process (svckit/http_server.py): request line + headers over
    # this many bytes → 431; a head slower than its timeout, or a body slower than its total
    # timeout or silent longer than its idle timeout → 408. Nothing reaches the app first.
    request_head_max_bytes: int = Field(default=16 * 1024, ge=1024)
    request_head_timeout_s: float = Field(default=10.0, gt=0)
    request_body_idle_timeout_s: float = Field(default=10.0, gt=0)
    request_body_timeout_s: float = Field(default=30.0, gt=0)
    log_level: str = "INFO"
    # Freeze the start-up heap out of the garbage collector's full passes (svckit/gc_tuning.py).
    # ``boxoffice serve`` turns it on; off by default so in-process test apps leave it alone.
    gc_freeze: bool = False
    # The event loop of served processes and the simulator. Saturated, uvloop serves
    # connections unfairly: with wrk (256 connections, 5 s runs, a 0.5 ms/request app) its
    # p99 was 3.1-3.6 s and its max ~5 s, against p99 <= 0.25 s and max <= 0.3 s on asyncio's
    # loop at the same req/s. An on-sale is saturation, and its tail is what people feel
    # (docs/benchmarks-history.md, "Event loop").
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"

    def weak_secrets(self) -> list[str]:
        """Environment names of the secrets that are a public default or too short."""
        weak = []
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < MIN_SECRET_CHARS:
            weak.append("BOXOFFICE_SECRET_KEY")
        token = self.admin_token
        if token and (token == DEV_ADMIN_TOKEN or len(token) < MIN_SECRET_CHARS):
            weak.append("BOXOFFICE_ADMIN_TOKEN")
        return weak

    def resolved_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file under ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir}/boxoffice.sqlite3"

    def require_redis_url(self) -> str:
        """The Redis URL; services need one (the dev supervisor provides the embedded one)."""
        if not self.redis_url:
            raise RuntimeError(
                "BOXOFFICE_REDIS_URL is not set; run through `boxoffice dev` to get the "
                "embedded server, or point it at a Redis"
            )
        return self.redis_url
