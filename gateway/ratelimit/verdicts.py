"""Rate-limit verdicts: the decision handed to the front layer, and each policy's rule that
turns the GCRA script's reply into a shared, cached decision (``service.py`` calls them)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ratelimit import metrics as m
from gateway.ratelimit.policies import Policy

H_LIMIT = b"ratelimit-limit"
H_REMAINING = b"ratelimit-remaining"
H_RESET = b"ratelimit-reset"


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """A verdict for one request (satisfies ``gateway.ratelimit_api.RateLimitDecision``).

    Immutable and shared: the limiter hands out the same object for the same verdict."""

    allowed: bool
    # RateLimit-* header pairs for the response (empty when nothing was counted).
    headers: tuple[tuple[bytes, bytes], ...] = ()
    # Whole seconds until a retry may succeed (when not allowed; at least 1).
    retry_after: int = 0
    # When not allowed: 429 over the limit, 503 when Redis is unavailable and the policy
    # fails closed.
    status: int = 429


# Redis unavailable and the policy fails open: let through, no headers (nothing counted).
ALLOWED_UNCOUNTED = LimitDecision(True)


def seconds_up(us: int) -> int:
    """Microseconds as whole seconds, rounded up (never negative)."""
    return max(0, -(-us // 1_000_000))


def verdict(
    limit_header: tuple[bytes, bytes], allowed: bool, remaining: int, retry_s: int, reset_s: int
) -> LimitDecision:
    """A decision with its ``RateLimit-*`` headers."""
    headers = (
        limit_header,
        (H_REMAINING, str(remaining).encode()),
        (H_RESET, str(reset_s).encode()),
    )
    return LimitDecision(True, headers) if allowed else LimitDecision(False, headers, retry_s)


# Bound of a policy's verdict cache; a full cache is emptied and fills again.
MAX_VERDICTS = 4096  # distinct (remaining or retry, reset) pairs


class Rule:
    """What one route group's policy needs per request, computed once: the script's
    arguments, the call prepared per subject, and the verdicts already made (the headers of
    a verdict depend only on ``(remaining, reset)`` in whole seconds, a few hundred pairs for
    a policy, so each is built once)."""

    __slots__ = (
        "admitted",
        "burst",
        "calls",
        "counts",
        "interval_us",
        "limit_header",
        "name",
        "policy",
        "refused",
        "tolerance_us",
    )

    def __init__(self, name: str, policy: Policy, counts: m.DecisionCounts) -> None:
        self.name = name
        self.policy = policy
        self.interval_us = policy.interval_us  # a computed property: once
        self.burst = policy.burst
        self.tolerance_us = self.interval_us * policy.burst
        self.limit_header = (H_LIMIT, str(policy.burst).encode())
        self.counts = counts
        self.calls: dict[str, object] = {}
        self.admitted: dict[tuple[int, int], LimitDecision] = {}
        self.refused: dict[tuple[int, int], LimitDecision] = {}

    def decide(self, reset_us: int) -> LimitDecision:
        """The verdict for the script's reply (see ``gcra.lua``): the reset in µs, negated
        when refused. Counted in the policy's decisions."""
        if reset_us > 0:
            self.counts.allowed += 1
            key = ((self.tolerance_us - reset_us) // self.interval_us, -(-reset_us // 1_000_000))
            verdict = self.admitted.get(key)
            if verdict is None:
                verdict = self._remember(self.admitted, key, True)
            return verdict
        self.counts.limited += 1
        reset_us = -reset_us
        retry_us = reset_us + self.interval_us - self.tolerance_us
        key = (max(1, seconds_up(retry_us)), seconds_up(reset_us))
        verdict = self.refused.get(key)
        if verdict is None:
            verdict = self._remember(self.refused, key, False)
        return verdict

    def _remember(
        self, cache: dict[tuple[int, int], LimitDecision], key: tuple[int, int], allowed: bool
    ) -> LimitDecision:
        if len(cache) >= MAX_VERDICTS:
            cache.clear()
        first, reset_s = key
        made = cache[key] = (
            verdict(self.limit_header, True, first, 0, reset_s)
            if allowed
            else verdict(self.limit_header, False, 0, first, reset_s)
        )
        return made
