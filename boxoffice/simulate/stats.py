"""The arithmetic of the report: percentiles, fairness of admission, peak concurrency.

Pure functions over plain numbers, unit-tested on their own."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max of a list of latencies."""
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two paired sequences (scipy's when installed, else the textbook
    O(n^2) count, fine for the few thousand users of a simulation)."""
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    if len(x) < 2:
        return None
    try:
        from scipy.stats import kendalltau  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        pass
    else:
        value = float(kendalltau(x, y).statistic)
        return None if math.isnan(value) else value
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx = x[i] - x[j]
            dy = y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return None if denom == 0 else (concordant - discordant) / denom


@dataclass(frozen=True)
class Fairness:
    """How well admission followed join order.

    ``tau`` is Kendall's tau between join order and admission order over the pairs of users
    whose admission order is *known*: a client only learns of its admission within a window
    (between its last "waiting" answer and its first "admitted" one, and within the second
    stamped in its admission token), so two users whose windows overlap were admitted in an
    order nobody outside the server can tell and are left out rather than guessed at.
    ``discordant`` pairs are proven violations: the later joiner was admitted strictly first.
    """

    users: int
    known_pairs: int
    total_pairs: int
    concordant: int
    discordant: int

    @property
    def tau(self) -> float | None:
        """(C - D) / (C + D) over the known pairs; 1.0 is perfectly fair."""
        known = self.concordant + self.discordant
        return None if known == 0 else (self.concordant - self.discordant) / known


def admission_fairness(
    join_positions: Sequence[int], windows: Sequence[tuple[float, float]]
) -> Fairness:
    """Compare each user's join position with its admission window ``(earliest, latest)``.

    A pair's admission order is known when one window ends before the other begins."""
    if len(join_positions) != len(windows):
        raise ValueError("one window per join position")
    import numpy as np  # only here: the rest of this module is plain Python

    n = len(join_positions)
    order = sorted(range(n), key=lambda i: windows[i][0])
    starts = np.array([windows[i][0] for i in order], dtype=float)
    positions = np.array([join_positions[i] for i in order], dtype=np.int64)
    concordant = discordant = 0
    for i in range(n):
        # Everyone whose window starts after mine ends was admitted strictly after me.
        k = int(np.searchsorted(starts, windows[i][1], side="right"))
        later = positions[k:]
        concordant += int(np.count_nonzero(later > join_positions[i]))
        discordant += int(np.count_nonzero(later < join_positions[i]))
    return Fairness(
        users=n,
        known_pairs=concordant + discordant,
        total_pairs=n * (n - 1) // 2,
        concordant=concordant,
        discordant=discordant,
    )


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The largest number of intervals ``[start, end)`` open at one instant."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        if end > start:
            events.append((start, 1))
            events.append((end, -1))
    # Ends sort before starts at the same instant: [a, b) and [b, c) do not overlap.
    events.sort(key=lambda e: (e[0], e[1]))
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak
