"""The in-process GCRA used by the ``local`` failure mode while Redis is unreachable.

Same arithmetic as ``gcra.lua``, on this process's monotonic clock; it never talks to
anything, so it cannot fail or block."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.ratelimit.policies import Policy


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one GCRA step says (times in microseconds)."""

    allowed: bool
    remaining: int
    retry_after_us: int
    reset_us: int


def gcra_step(tat: float, now: float, interval: float, burst: int) -> tuple[Verdict, float]:
    """One admission decision; returns the verdict and the new TAT (unchanged if refused)."""
    # Clamped as in gcra.lua: only matters when the share changes (the live count moved).
    tat = min(max(tat, now), now + interval * burst)
    new_tat = tat + interval
    allow_at = new_tat - interval * burst
    if allow_at > now:
        return Verdict(False, 0, int(allow_at - now), int(tat - now)), tat
    remaining = int((now + interval * burst - new_tat) // interval)
    return Verdict(True, remaining, 0, int(new_tat - now)), new_tat


class LocalLimiter:
    """Per-process GCRA state: ``(policy, subject) -> TAT``, pruned so it cannot grow
    without bound while Redis stays down under a flood of distinct subjects."""

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tat: dict[tuple[str, str], float] = {}
        self._max_entries = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._tat)

    def hit(self, name: str, subject: str, policy: Policy) -> Verdict:
        """Count one request of ``subject`` under ``policy`` (already scaled to this
        instance's share)."""
        now = self._clock() * 1_000_000
        key = (name, subject)
        verdict, new_tat = gcra_step(self._tat.get(key, now), now, policy.interval_us, policy.burst)
        if verdict.allowed:
            if key not in self._tat and len(self._tat) >= self._max_entries:
                self._prune(now)
            self._tat[key] = new_tat
        return verdict

    def _prune(self, now: float) -> None:
        # Subjects whose TAT has passed are at rest: forgetting them changes nothing.
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        if len(self._tat) >= self._max_entries:
            # Still full of active subjects: forget the oldest half (they get a fresh burst,
            # which beats unbounded memory in a degraded mode).
            keep = sorted(self._tat.items(), key=lambda kv: kv[1])[len(self._tat) // 2 :]
            self._tat = dict(keep)

    def clear(self) -> None:
        """Forget everything (e.g. in tests)."""
        self._tat.clear()
