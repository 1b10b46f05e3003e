"""The circuit breaker's state machine on a fake clock."""

from __future__ import annotations

from gateway.circuit import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = Clock()
    changes: list[str] = []
    b = CircuitBreaker(threshold=3, cooldown_s=5, clock=clock, on_change=changes.append)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.allow()
    b.success()  # a success resets the count
    for _ in range(3):
        assert b.allow()
        b.failure()
    assert b.state == "open"
    assert not b.allow()
    assert b.retry_after() == 5
    clock.now += 3.2
    assert b.retry_after() == 2
    assert changes == ["open"]


def test_half_open_lets_exactly_one_probe() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, cooldown_s=2, clock=clock)
    b.allow()
    b.failure()
    clock.now += 2.0
    assert b.allow()  # the probe
    assert b.state == "half_open"
    assert not b.allow()  # others wait for its verdict
    b.success()
    assert b.state == "closed"
    assert b.allow()
    assert b.allow()


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, cooldown_s=2, clock=clock)
    b.allow()
    b.failure()
    clock.now += 2.5
    assert b.allow()
    b.failure()
    assert b.state == "open"
    clock.now += 1.0
    assert not b.allow()
    clock.now += 1.0
    assert b.allow()


def test_released_probe_frees_the_slot() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, cooldown_s=1, clock=clock)
    b.allow()
    b.failure()
    clock.now += 1
    assert b.allow()
    b.release()  # e.g. the client went away before a verdict
    assert b.allow()
