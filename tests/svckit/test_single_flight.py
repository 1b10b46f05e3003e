"""SingleFlight: one call per key at a time, shared by concurrent callers."""

from __future__ import annotations

import asyncio

import pytest

from svckit.single_flight import SingleFlight


async def test_concurrent_callers_share_one_call_per_key() -> None:
    flights: SingleFlight[int, str] = SingleFlight()
    calls: list[int] = []
    gate = asyncio.Event()

    async def start(key: int) -> str:
        calls.append(key)
        await gate.wait()
        return f"value {key}"

    waiting = [asyncio.ensure_future(flights.run(k, start)) for k in (1, 1, 2, 1, 2)]
    await asyncio.sleep(0)
    assert flights.running(1)
    assert flights.running(2)
    gate.set()
    assert await asyncio.gather(*waiting) == ["value 1", "value 1", "value 2", "value 1", "value 2"]
    assert sorted(calls) == [1, 2]
    assert not flights.running(1)
    # Finished: the next call runs again (it is not a cache).
    assert await flights.run(1, start) == "value 1"
    assert sorted(calls) == [1, 1, 2]


async def test_every_caller_gets_the_exception_and_the_next_call_retries() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    attempts = 0

    async def start(key: str) -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("down")
        return attempts

    results = await asyncio.gather(
        *(flights.run("k", start) for _ in range(5)), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionError] * 5
    assert attempts == 1
    assert await flights.run("k", start) == 2


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    flights: SingleFlight[int, str] = SingleFlight()
    gate = asyncio.Event()

    async def start(key: int) -> str:
        await gate.wait()
        return "done"

    first = asyncio.ensure_future(flights.run(1, start))
    second = asyncio.ensure_future(flights.run(1, start))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    assert await second == "done"
