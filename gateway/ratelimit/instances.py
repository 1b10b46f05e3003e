"""How many gateway instances are alive: each one heartbeats into a sorted set in Redis
from a background task; the ``local`` failure mode divides its policies by the count last
seen (Redis being down is exactly when it cannot be asked)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from contextlib import suppress

from redis.asyncio import Redis

from gateway.ratelimit import scripts
from gateway.ratelimit.metrics import RateLimitMetrics
from shared import keys

log = logging.getLogger("boxoffice.gateway.ratelimit")


def new_instance_id() -> str:
    """A unique, readable id for this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class InstanceTracker:
    """Heartbeats this instance and remembers the live count (1 until first seen)."""

    def __init__(
        self,
        *,
        redis: Redis,
        interval_s: float,
        window_s: float,
        timeout_s: float = 0.5,
        instance_id: str | None = None,
        metrics: RateLimitMetrics | None = None,
    ) -> None:
        self.instance_id = instance_id or new_instance_id()
        self.live = 1
        self._redis = redis
        self._script = scripts.heartbeat(redis)
        self._interval_s = interval_s
        self._window_ms = int(window_s * 1000)
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    async def beat(self) -> int:
        """One heartbeat; returns and remembers the live count. Raises on Redis trouble."""
        # Bounded by the client's timeouts (make_redis), not by cancelling a redis-py call.
        count = await self._script(
            keys=[keys.gateway_instances()], args=[self.instance_id, self._window_ms]
        )
        self.live = max(1, int(count))
        if self._metrics is not None:
            self._metrics.live_gateways.set(self.live)
        return self.live

    async def _run(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            try:
                await self.beat()
            except Exception as e:  # Redis down: keep the last count, try again next period
                log.debug("gateway heartbeat failed: %s: %s", type(e).__name__, e)
            # Wait on an event rather than rely on cancellation alone: a cancel that lands
            # inside the Redis call can come back as a Redis error and be swallowed above.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)

    def start(self) -> None:
        """Start the background heartbeat."""
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="ratelimit-heartbeat")

    async def stop(self) -> None:
        """Stop heartbeating and leave the set (best effort, bounded)."""
        if self._task is not None and self._stopping is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(self._task, self._timeout_s * 2)
            except TimeoutError:
                pass  # wait_for cancelled it
            self._task = None
        with suppress(Exception):
            await self._redis.zrem(keys.gateway_instances(), self.instance_id)
