"""How the limiter reads ``gcra.lua``'s one-integer reply (the reset, negated when refused):
for any policy and any stored state, the same verdict and headers as the four values the
script used to return (allowed, remaining, retry after, reset); verdicts built once, shared,
and their caches bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from gateway.ratelimit import metrics as m
from gateway.ratelimit import service, verdicts
from gateway.ratelimit.policies import Policy, RateLimitSettings
from gateway.ratelimit.service import RedisRateLimiter
from gateway.ratelimit.verdicts import Rule
from shared import keys

NOW = 1_796_000_000_123_456  # server time in µs: 16 digits, as in production


def script(tat_ahead: int | None, interval: int, burst: int) -> tuple[int, tuple[int, ...]]:
    """``gcra.lua``'s arithmetic for a stored TAT ``tat_ahead`` µs from now (None: no key):
    its reply, and the four values the script returned before."""
    tolerance = interval * burst
    tat = NOW if tat_ahead is None else max(NOW + tat_ahead, NOW)
    tat = min(tat, NOW + tolerance)
    new_tat = tat + interval
    if new_tat - tolerance > NOW:
        return NOW - tat, (0, 0, new_tat - tolerance - NOW, tat - NOW)
    return new_tat - NOW, (1, (NOW + tolerance - new_tat) // interval, 0, new_tat - NOW)


def seconds_up(us: int) -> int:
    return max(0, -(-us // 1_000_000))


policies = st.builds(
    Policy,
    rate=st.floats(min_value=0.01, max_value=1e6),
    period_s=st.floats(min_value=0.001, max_value=3600),
    burst=st.integers(min_value=1, max_value=10_000),
)


@given(policy=policies, ahead=st.none() | st.integers(min_value=-(10**10), max_value=10**13))
def test_one_integer_says_what_four_did(policy: Policy, ahead: int | None) -> None:
    rule = Rule("t", policy, m.DecisionCounts())
    reply, (allowed, remaining, retry_us, reset_us) = script(ahead, rule.interval_us, rule.burst)
    assert (reply > 0) == bool(allowed)
    verdict = rule.decide(reply)
    assert verdict.allowed == bool(allowed)
    assert dict(verdict.headers) == {
        b"ratelimit-limit": str(policy.burst).encode(),
        b"ratelimit-remaining": str(remaining).encode(),
        b"ratelimit-reset": str(seconds_up(reset_us)).encode(),
    }
    if not allowed:
        assert verdict.retry_after == max(1, seconds_up(retry_us))
        assert verdict.status == 429


def test_verdicts_are_shared_and_counted() -> None:
    counts = m.DecisionCounts()
    rule = Rule("t", Policy(rate=1, period_s=10, burst=5), counts)
    # 4 left, at rest in 10 s: the same verdict whatever the microseconds.
    first = rule.decide(10_000_000)
    assert rule.decide(9_999_999) is first
    assert dict(first.headers)[b"ratelimit-remaining"] == b"4"
    refused = rule.decide(-50_000_000)  # burst spent: next slot in 10 s, at rest in 50 s
    assert (refused.allowed, refused.retry_after) == (False, 10)
    assert rule.decide(-49_999_000) is refused
    assert (counts.allowed, counts.limited) == (2, 2)


def test_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdicts, "MAX_VERDICTS", 3)
    monkeypatch.setattr(service, "_MAX_CALLS", 5)
    rule = Rule("t", Policy(rate=1, period_s=1, burst=1000), m.DecisionCounts())
    for left in range(20):
        verdict = rule.decide(1_000_000_000 - left * 1_000_000)
        assert dict(verdict.headers)[b"ratelimit-remaining"] == str(left).encode()
        assert len(rule.admitted) <= 3
    # The prepared calls, one per subject (redis-py's: keys and args).
    limiter = RedisRateLimiter(redis=Redis(), settings=RateLimitSettings())
    for i in range(20):
        call = limiter._prepare(rule, f"ip:{i}")
        assert call == ([keys.rate_limit("t", f"ip:{i}")], [rule.interval_us, 1000])
        assert len(rule.calls) <= 5
