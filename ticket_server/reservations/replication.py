"""Waiting for a replica to acknowledge a confirmed reservation before answering 201.

Redis replicates asynchronously: a master that dies right after a confirm can take the
reservation with it, and the replica promoted in its place never saw it. Where the master
has replicas, a confirm therefore answers 201 only once at least one replica holds it
(``WAIT 1 <timeout>``). ``WAIT`` covers the writes made on its own connection, and the
confirm script may have run on another one (the auto-pipelined client); so a small write
in the session's slot (the fence) goes first on the ``WAIT``'s connection: it replicates
after the confirm, and a replica that acknowledged it has the confirm too. On a cluster the
fence and the ``WAIT`` go, on one connection, to the master of the session's slot (a
cluster client would send a keyless ``WAIT`` to every master), and the replica count is
that master's.

When the bound passes the confirm has happened on the master but may not survive a
failover: the answer is a 503 ``replication-timeout`` problem. A retry with the same
``Idempotency-Key`` replays the reservation (and waits again) if it survived; if it did not
(the replica was promoted without it), the hold it came from is confirmed afresh, under the
same reservation id (derived from the hold), so one key never yields two reservations.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import AskError, MovedError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared import keys
from svckit.errors import ServiceUnavailable
from svckit.redis_client import BoxofficeRedisCluster
from svckit.single_flight import SingleFlight

# How long the replica count read from INFO is trusted: replicas come and go rarely, and
# one INFO per confirm would double the confirm's round trips.
REPLICAS_REFRESH_S = 1.0
_FENCE_TTL_MS = 60_000
# Redirections followed for the fence (a slot moves once at a time).
REDIRECTIONS = 3


class ReplicationTimeout(ServiceUnavailable):
    """No replica acknowledged the reservation within the bound."""

    title, slug = "Replication Timeout", "replication-timeout"


class ReplicaWait:
    """Confirms wait for one replica's acknowledgement where the master has replicas."""

    def __init__(self, *, redis: Redis, timeout_ms: int) -> None:
        """``timeout_ms`` 0 never waits (a deliberate choice for a setup without replicas)."""
        self._redis = redis
        self.timeout_ms = timeout_ms
        # Per master (its name on a cluster, "" for the one master): replicas, checked at.
        self._replicas: dict[str, tuple[int, float]] = {}
        self._checking: SingleFlight[str, int] = SingleFlight()

    async def replicas(self, node: ClusterNode | None = None) -> int:
        """Replicas connected to the master (``INFO replication``), cached briefly."""
        name = node.name if node is not None else ""
        count, checked_at = self._replicas.get(name, (0, float("-inf")))
        if time.monotonic() - checked_at < REPLICAS_REFRESH_S:
            return count

        async def check(_: str) -> int:
            info: Any
            if node is not None and isinstance(self._redis, BoxofficeRedisCluster):
                async with self._redis.turn():  # the node's pool is the client's
                    info = await node.execute_command("INFO", "replication")
            else:
                info = await self._redis.info("replication")
            self._replicas[name] = (int(info.get("connected_slaves", 0)), time.monotonic())
            return self._replicas[name][0]

        return await self._checking.run(name, check)

    async def acknowledged(self, session_id: int) -> None:
        """Return once a replica holds every write made so far in the session's slot;
        raise :class:`ReplicationTimeout` when none did within the bound."""
        if self.timeout_ms <= 0:
            return
        fence = keys.replication_fence(session_id)
        if isinstance(self._redis, BoxofficeRedisCluster):
            acked: Any = await self._on_cluster(self._redis, fence)
            if acked is None:
                return
        else:
            if await self.replicas() == 0:
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(fence, "1", px=_FENCE_TTL_MS)
                pipe.wait(1, self.timeout_ms)
                _, acked = await pipe.execute()
        if int(acked) < 1:
            raise ReplicationTimeout(
                "The reservation is not yet held by a replica, so it might not survive a "
                "failover. Retry with the same Idempotency-Key: it returns the reservation "
                "if it survived, or confirms the hold afresh if it did not.",
                retry_after=1,
            )

    async def _on_cluster(self, cluster: BoxofficeRedisCluster, fence: str) -> Any:
        """The fence and ``WAIT`` on the slot's master, following a redirection the way the
        cluster client does (``MOVED``: patch the slot map; ``ASK``: ``ASKING`` first) so a
        resharded slot does not fail every confirm; ``None`` when the master has no
        replicas."""
        # A no-op once the slot map is known, unless a failure asked for a fresh one.
        await cluster.initialize()
        node = _master_of(cluster, fence)
        asking = False
        for _ in range(REDIRECTIONS):
            commands = [PipelineCommand(0, "ASKING")] if asking else []
            commands += [
                PipelineCommand(1, "SET", fence, "1", "PX", _FENCE_TTL_MS),
                PipelineCommand(2, "WAIT", 1, self.timeout_ms),
            ]
            try:
                if await self.replicas(node) == 0:
                    return None
                async with cluster.turn():  # a full pool waits, as every cluster call does
                    await node.execute_pipeline(commands)
            except (RedisConnectionError, RedisTimeoutError):
                # The master may have died: the next confirm must find the promoted replica.
                cluster.node_failed(node)
                raise
            error = next((c.result for c in commands if isinstance(c.result, Exception)), None)
            if error is None:
                return commands[-1].result
            if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
                cluster.node_failed(node)
                raise error
            if isinstance(error, MovedError):
                await cluster.nodes_manager.move_slot(error)
                node, asking = _master_of(cluster, fence), False
            elif isinstance(error, AskError):
                host, port = cluster.nodes_manager.remap_host_port(error.host, error.port)
                target = cluster.nodes_manager.get_node(host=host, port=port)
                if target is None:
                    raise error
                node, asking = target, True
            else:
                raise error  # the caller's 503; a retry with the same key is safe
        raise ReplicationTimeout(
            "The session's data is moving between Redis nodes; retry with the same "
            "Idempotency-Key.",
            retry_after=1,
        )


def _master_of(cluster: BoxofficeRedisCluster, key: str) -> ClusterNode:
    node = cluster.get_node_from_key(key)
    if node is None:  # typed optional; redis-py raises SlotNotCoveredError instead
        raise SlotNotCoveredError(f"no master for {key!r}")
    return node
