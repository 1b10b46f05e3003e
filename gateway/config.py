"""Gateway settings: the route table, upstream timeouts, retries, circuit breaker, limits.

Everything here can be set from the environment (``BOXOFFICE_`` prefix); list/dict fields take
JSON, e.g. ``BOXOFFICE_ROUTES='[{"path": "/api/", "upstream": "api", "group": "browse"}]'``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.ratelimit.policies import RateLimitSettings
from shared.config import CommaList, CommonSettings

# The pseudo-upstream of routes the gateway answers itself (auth, queue).
GATEWAY = "gateway"


class Route(BaseModel):
    """One entry of the route table. The first entry that matches a request wins.

    ``path`` is either a prefix ending in ``/`` (``/api/ticketing/`` matches everything below
    it) or an exact template whose ``{name}`` segments match one path segment
    (``{session_id}`` matches digits only). ``rewrite`` replaces a prefix's text in the
    upstream path (``None`` keeps the path 1:1); templates are always forwarded 1:1.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    upstream: str
    group: str
    methods: frozenset[str] | None = None
    rewrite: str | None = None
    auth: bool = False
    # Needs ``X-Admission-Token``: "session" checks it against ``{session_id}`` of the path;
    # "user" checks signature, expiry and user only (the backend checks the session binding).
    admission: Literal["session", "user"] | None = None

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("route paths start with '/'")
        return value

    @field_validator("methods", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(m).upper() for m in value)
        return value


def default_routes() -> list[Route]:
    """The public route table of API.md: ticketing → ticket_server, rest of /api → api_server."""
    r = Route

    def ticket(
        path: str,
        methods: set[str] | None,
        group: str,
        admission: Literal["session", "user"] | None = None,
    ) -> Route:
        # Every ticketing route needs a user; booking steps an admission token too.
        allowed = frozenset(methods) if methods is not None else None
        return r(
            path=path,
            methods=allowed,
            upstream="ticket",
            group=group,
            auth=True,
            admission=admission,
        )

    read, write = "ticketing-read", "ticketing-write"
    return [
        r(path="/api/auth/", upstream=GATEWAY, group="auth"),
        # The pre-queue's draw record is public (anyone may audit it).
        r(
            path="/api/queue/{session_id}/draw",
            methods=frozenset({"GET"}),
            upstream=GATEWAY,
            group="queue",
        ),
        r(path="/api/queue/", upstream=GATEWAY, group="queue", auth=True),
        ticket("/api/ticketing/sessions/{session_id}/seats", {"GET"}, read, "session"),
        ticket("/api/ticketing/sessions/{session_id}/holds", {"POST"}, write, "session"),
        ticket("/api/ticketing/reservations", {"POST"}, write, "user"),
        ticket("/api/ticketing/", {"GET", "HEAD"}, read),
        ticket("/api/ticketing/", None, write),
        r(path="/api/admin/", upstream="api", group="admin"),
        r(path="/api/", upstream="api", group="browse"),
    ]


class Settings(CommonSettings):
    """The gateway's settings (on top of what every service reads)."""

    routes: list[Route] = Field(default_factory=default_routes)

    # Upstream HTTP client.
    upstream_connect_timeout_s: float = Field(default=1.0, gt=0)
    upstream_read_timeout_s: float = Field(default=10.0, gt=0)
    upstream_write_timeout_s: float = Field(default=10.0, gt=0)
    upstream_pool_timeout_s: float = Field(default=2.0, gt=0)
    upstream_max_connections: int = Field(default=256, ge=1)
    upstream_max_keepalive: int = Field(default=128, ge=0)
    # "fast": the gateway's own httptools transport (svckit/http_transport.py, chosen by
    # measurement, see BENCHMARKS.md); "httpx": stock httpcore, which a plain ``respx.mock``
    # intercepts. (bench/gateway_proxy.py compares httpx-aiohttp's transport too, by injecting
    # it: it is no production option.)
    upstream_transport: Literal["fast", "httpx"] = "fast"
    # Extra attempts for idempotent requests whose connection failed (never after a byte
    # was sent upstream for a non-idempotent one).
    upstream_retries: int = Field(default=2, ge=0, le=5)
    upstream_retry_backoff_s: float = Field(default=0.05, ge=0)

    # Circuit breaker, per upstream.
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cooldown_s: float = Field(default=5.0, gt=0)

    # How long the lifespan waits for cancelled background tasks (queue loop) at shutdown.
    background_shutdown_timeout_s: float = Field(default=5.0, gt=0)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    readiness_timeout_s: float = Field(default=1.0, gt=0)

    # Rate limiting (gateway/ratelimit/, issue 4): policies per route group, failure modes.
    # JSON in BOXOFFICE_RATE_LIMIT, merged over the defaults, e.g.
    # '{"policies": {"browse": {"rate": 50, "burst": 100}}}' or '{"enabled": false}'.
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)

    # Micro-cache (gateway/cache.py, issue 8): route group → TTL in seconds for anonymous
    # GETs, JSON in BOXOFFICE_MICRO_CACHE_TTL_S, e.g. '{"browse": 1}'. Empty (default): off.
    # Requests with identity are never cached; rate limiting still counts every request.
    micro_cache_ttl_s: dict[str, float] = Field(default_factory=dict)
    micro_cache_max_entries: int = Field(default=2048, ge=1)

    # Networks whose X-Forwarded-For is believed (used by gateway/ratelimit/); empty = none.
    # Comma-separated in the environment, like cors_origins.
    trusted_proxies: CommaList = Field(default_factory=list)

    def upstream_urls(self) -> dict[str, str]:
        """Upstream name → base URL."""
        return {"api": self.api_server_url, "ticket": self.ticket_server_url}
