"""ticket_server settings: the common ones plus what only the command side needs."""

from __future__ import annotations

from pydantic import Field

from shared.config import CommonSettings


class Settings(CommonSettings):
    """Settings of ticket_server (environment prefix ``BOXOFFICE_``)."""

    # Bounded so that an unreachable Redis turns into a quick 503, never a hang.
    redis_connect_timeout_s: float = Field(default=1.0, gt=0)
    # Few connections on purpose: Redis runs one command at a time anyway, and a burst of
    # requests opening hundreds of connections at once on a busy event loop times out
    # connecting. Requests queue for a pooled connection instead (up to the pool timeout).
    redis_max_connections: int = Field(default=32, ge=1)
    # How long a request waits for a free pooled connection before giving up (503).
    redis_pool_timeout_s: float = Field(default=3.0, gt=0)
    # How long a request waits for another request that is loading the seat map.
    inventory_load_wait_s: float = Field(default=5.0, gt=0)
    # How long an expired hold is remembered (a confirm then gets 409 rather than 404).
    hold_grace_s: int = Field(default=300, ge=0)
    idempotency_ttl_s: int = Field(default=86400, ge=1)
    # Where the Redis master has replicas, a confirm answers 201 only once one of them
    # holds the reservation (WAIT), or a 503 replication-timeout problem after this bound.
    # 0 never waits.
    confirm_replica_timeout_ms: int = Field(default=500, ge=0)

    def replica_wait_ms(self) -> int:
        """The bound a confirm's ``WAIT`` uses: the setting, kept within 80 % of the Redis
        socket timeout, since a reply arriving after the client gave up would be a lost
        answer (a 503 without the replication problem's advice)."""
        return min(self.confirm_replica_timeout_ms, int(self.redis_socket_timeout_s * 800))
