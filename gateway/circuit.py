"""A per-upstream circuit breaker: after N consecutive transport failures the circuit opens
and requests are refused at once (503 + Retry-After) instead of piling onto a dead upstream;
after a cool-down one probe request is let through (half-open) and its outcome decides."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class CircuitBreaker:
    """State machine closed → open → half-open → closed/open. Not thread-safe (one event
    loop); per process, on purpose: each gateway instance judges its own path to the
    upstream."""

    __slots__ = (
        "_clock",
        "_failures",
        "_on_change",
        "_opened_at",
        "_probe_in_flight",
        "cooldown_s",
        "state",
        "threshold",
    )

    def __init__(
        self,
        *,
        threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.state = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._clock = clock
        self._on_change = on_change

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)

    def allow(self) -> bool:
        """Whether a request may go upstream now. In half-open, only one probe at a time."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self._clock() - self._opened_at < self.cooldown_s:
                return False
            self._set("half_open")
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def retry_after(self) -> int:
        """Whole seconds until the next probe may go (at least 1)."""
        left = self.cooldown_s - (self._clock() - self._opened_at)
        return max(1, math.ceil(left))

    def success(self) -> None:
        """The upstream answered (any HTTP status): close the circuit."""
        self._failures = 0
        self._probe_in_flight = False
        self._set("closed")

    def failure(self) -> None:
        """A transport failure (connect, reset, timeout)."""
        self._probe_in_flight = False
        self._failures += 1
        if self.state == "half_open" or self._failures >= self.threshold:
            self._opened_at = self._clock()
            self._set("open")

    def release(self) -> None:
        """The request ended without a verdict (e.g. the client went away)."""
        self._probe_in_flight = False
