"""Waking a session's SSE streams on this gateway when the session changes.

The admission loop reports each tick's change counter (``changed``); every open stream of
the session waits in ``wait`` and, once woken, computes its status from the service's
snapshot in memory. How a release goes:

- The snapshot is read first, once (``prepare``), so no stream then waits for Redis.
- Streams are woken ``WAKE_CHUNK`` per turn of the event loop. The HTTP protocol sends a
  step's writes in one ``call_soon`` after it (``svckit/http_server.py``), so behind every
  callback already due. Waking 10,000 streams in one turn therefore delivered nothing until
  the last status was computed, and it stalled every other request meanwhile.
- A change after a quiet spell is released at once. Changes after that wait until the gap
  since the last release has passed, and coalesce into one release (one status per stream).
  The gap is at least the last fan-out's duration, so a session that changes on every tick
  spends at most half of the gateway's time on fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("boxoffice.gateway.queue")

# Streams woken per turn of the event loop (their writes are flushed between turns).
WAKE_CHUNK = 256


class QueueNotifier:
    """In-process wake-ups for SSE streams, per session."""

    def __init__(
        self, *, gap_s: float = 0.0, prepare: Callable[[int], Awaitable[object]] | None = None
    ) -> None:
        """``gap_s``: the least time between two releases of a session; ``prepare``: run
        once per release before any stream wakes (the service's snapshot read)."""
        self.gap_s = gap_s
        self.prepare = prepare
        self._waiters: dict[int, dict[asyncio.Future[None], None]] = {}
        self._versions: dict[int, int] = {}
        self._releasing: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()
        self._next_at: dict[int, float] = {}

    def changed(self, session_id: int, version: int) -> None:
        """Release the session's streams if its change counter moved (at once, or when
        the gap since the last release has passed)."""
        if self._versions.get(session_id) == version:
            return
        self._versions[session_id] = version
        if session_id in self._releasing:
            self._again.add(session_id)  # streams woken before this change need another
            return
        self._releasing[session_id] = asyncio.create_task(
            self._release(session_id), name=f"queue-sse-release-{session_id}"
        )

    async def wait(self, session_id: int, timeout_s: float) -> None:
        """Until the session's streams are released or ``timeout_s`` passes."""
        future = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(session_id, {})
        waiters[future] = None
        try:
            # asyncio.timeout, not wait_for: no task per waiting stream.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await future
        finally:
            current = self._waiters.get(session_id)
            if current is not None:
                current.pop(future, None)
                if not current:
                    del self._waiters[session_id]

    def close(self) -> None:
        """Cancel the releases under way (at shutdown)."""
        for task in self._releasing.values():
            task.cancel()
        self._releasing.clear()

    async def _release(self, session_id: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                delay = self._next_at.get(session_id, 0.0) - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._again.discard(session_id)  # the fan-out below covers those changes
                started = loop.time()
                await self._fan_out(session_id)
                took = loop.time() - started
                self._next_at[session_id] = loop.time() + max(self.gap_s, took)
                if session_id not in self._again:
                    return
        finally:
            self._releasing.pop(session_id, None)

    async def _fan_out(self, session_id: int) -> None:
        if self.prepare is not None:
            try:
                await self.prepare(session_id)
            except Exception:  # Redis away: each stream then reports it on its own read
                log.warning("queue snapshot read before an SSE release failed", exc_info=True)
        waiters = self._waiters.pop(session_id, None)
        if not waiters:
            return
        for n, future in enumerate(waiters, start=1):
            if not future.done():
                future.set_result(None)
            if n % WAKE_CHUNK == 0:
                await asyncio.sleep(0)  # let this chunk run and its writes go out
