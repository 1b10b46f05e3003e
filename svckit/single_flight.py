"""One call per key at a time, its result shared by every caller that asks meanwhile.

At on-sale time thousands of requests for the same session arrive together, and whatever
each of them would fetch or write once (session facts, a seat map load, the queue registry
entry) must happen once, not once per request (like Go's ``singleflight``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """Shares the running call per key; the next call after it finishes starts afresh."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[T]] = {}

    async def run(self, key: K, start: Callable[[K], Coroutine[Any, Any, T]]) -> T:
        """``start(key)``'s result (or exception), shared with every concurrent caller."""
        task = self._running.get(key)
        if task is None:
            # A task of its own: the caller that started it may be cancelled (client gone)
            # while others still wait for the result.
            task = asyncio.ensure_future(start(key))
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        # shield: one caller giving up must not cancel the others' work (and when all
        # gave up, it marks a failure as retrieved: nothing is logged for it).
        return await asyncio.shield(task)

    def running(self, key: K) -> bool:
        """Whether a call for ``key`` is in flight."""
        return key in self._running
