"""Waiting for a replica to acknowledge a confirmed reservation before answering 201.

Redis replicates asynchronously: a master that dies right after a confirm can take the
reservation with it, and the replica promoted in its place never saw it. Where the master
has replicas, a confirm therefore answers 201 only once at least one replica holds it
(``WAIT 1 <timeout>``). ``WAIT`` covers the writes made on its own connection, and the
confirm script may have run on another one (the auto-pipelined client); so a small write
in the session's slot (the fence) goes first on the ``WAIT``'s connection: it replicates
after the confirm, and a replica that acknowledged it has the confirm too.

When the bound passes the confirm has happened on the master but may not survive a
failover: the answer is a 503 ``replication-timeout`` problem. A retry with the same
``Idempotency-Key`` replays the reservation (and waits again) if it survived; if it did not
(the replica was promoted without it), the hold it came from is confirmed afresh, under the
same reservation id (derived from the hold), so one key never yields two reservations.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from shared import keys
from svckit.errors import ServiceUnavailable
from svckit.single_flight import SingleFlight

# How long the replica count read from INFO is trusted: replicas come and go rarely, and
# one INFO per confirm would double the confirm's round trips.
REPLICAS_REFRESH_S = 1.0
_FENCE_TTL_MS = 60_000


class ReplicationTimeout(ServiceUnavailable):
    """No replica acknowledged the reservation within the bound."""

    title, slug = "Replication Timeout", "replication-timeout"


class ReplicaWait:
    """Confirms wait for one replica's acknowledgement where the master has replicas."""

    def __init__(self, *, redis: Redis, timeout_ms: int) -> None:
        """``timeout_ms`` 0 never waits (a deliberate choice for a setup without replicas)."""
        self._redis = redis
        self.timeout_ms = timeout_ms
        self._replicas = 0
        self._checked_at = float("-inf")
        self._checking: SingleFlight[None, int] = SingleFlight()

    async def replicas(self) -> int:
        """Replicas connected to the master (``INFO replication``), cached briefly."""
        if time.monotonic() - self._checked_at < REPLICAS_REFRESH_S:
            return self._replicas
        return await self._checking.run(None, self._check)

    async def _check(self, _: None) -> int:
        info = await self._redis.info("replication")
        self._replicas = int(info.get("connected_slaves", 0))
        self._checked_at = time.monotonic()
        return self._replicas

    async def acknowledged(self, session_id: int) -> None:
        """Return once a replica holds every write made so far in the session's slot;
        raise :class:`ReplicationTimeout` when none did within the bound."""
        if self.timeout_ms <= 0 or await self.replicas() == 0:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.replication_fence(session_id), "1", px=_FENCE_TTL_MS)
            pipe.wait(1, self.timeout_ms)
            _, acked = await pipe.execute()
        if int(acked) < 1:
            raise ReplicationTimeout(
                "The reservation is not yet held by a replica, so it might not survive a "
                "failover. Retry with the same Idempotency-Key: it returns the reservation "
                "if it survived, or confirms the hold afresh if it did not.",
                retry_after=1,
            )
