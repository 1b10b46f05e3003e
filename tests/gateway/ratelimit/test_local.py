"""The in-process GCRA (the ``local`` failure mode), on a fake clock."""

from __future__ import annotations

from gateway.ratelimit.local import LocalLimiter, gcra_step
from gateway.ratelimit.policies import Policy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestGcraStep:
    def test_burst_then_one_per_interval(self) -> None:
        tat, now = 0.0, 1_000_000.0
        results = []
        for _ in range(4):
            v, tat = gcra_step(tat, now, 100.0, 3)
            results.append((v.allowed, v.remaining))
        assert results == [(True, 2), (True, 1), (True, 0), (False, 0)]
        v, _ = gcra_step(tat, now, 100.0, 3)
        assert v.retry_after_us == 100
        v, tat = gcra_step(tat, now + 99, 100.0, 3)
        assert not v.allowed
        v, tat = gcra_step(tat, now + 100, 100.0, 3)
        assert v.allowed
        assert v.remaining == 0


class TestLocalLimiter:
    def test_subjects_and_policies_are_independent(self) -> None:
        clock = FakeClock()
        lim = LocalLimiter(clock=clock)
        p = Policy(rate=1, burst=2)
        assert [lim.hit("a", "x", p).allowed for _ in range(3)] == [True, True, False]
        assert lim.hit("a", "y", p).allowed
        assert lim.hit("b", "x", p).allowed
        clock.now += 1.0
        assert lim.hit("a", "x", p).allowed
        assert not lim.hit("a", "x", p).allowed

    def test_memory_is_bounded(self) -> None:
        clock = FakeClock()
        lim = LocalLimiter(max_entries=100, clock=clock)
        p = Policy(rate=1, burst=5)
        for i in range(1000):
            lim.hit("a", f"s{i}", p)
        assert len(lim) <= 100
        # Subjects at rest are pruned first; a recent one keeps its state.
        clock.now += 10
        lim.hit("a", "hot", p)
        lim.hit("a", "hot", p)
        for i in range(200):
            lim.hit("a", f"t{i}", p)
        assert len(lim) <= 100
