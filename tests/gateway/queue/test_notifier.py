"""The SSE notifier: one release per session per change burst, after the gap."""

from __future__ import annotations

import asyncio
import time

from gateway.queue.admission import QueueNotifier

GAP_S = 0.2


async def test_a_change_releases_every_stream_of_the_session_once_after_the_gap() -> None:
    notifier = QueueNotifier(gap_s=GAP_S)
    woke: list[float] = []

    async def stream() -> None:
        await notifier.wait(1, timeout_s=5.0)
        woke.append(time.monotonic())

    streams = [asyncio.create_task(stream()) for _ in range(50)]
    await asyncio.sleep(0)  # every stream is waiting
    t0 = time.monotonic()
    notifier.changed(1, version=1)
    await asyncio.sleep(GAP_S / 2)
    assert woke == []  # not before the gap
    notifier.changed(1, version=2)  # within the gap: the same release
    await asyncio.wait_for(asyncio.gather(*streams), timeout=2.0)
    assert len(woke) == 50
    assert all(GAP_S * 0.9 <= t - t0 < 1.0 for t in woke)
    again = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(GAP_S * 1.5)
    assert not again.done()  # the second change was part of the first release
    again.cancel()


async def test_a_change_within_the_gap_is_one_release_and_another_session_is_not_woken() -> None:
    notifier = QueueNotifier(gap_s=GAP_S)
    other = asyncio.create_task(notifier.wait(2, timeout_s=5.0))
    first = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=1)
    notifier.changed(1, version=1)  # the same version: nothing new
    await asyncio.wait_for(first, timeout=1.0)
    # A stream waiting again right after the release waits for the next change.
    again = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(GAP_S * 1.5)
    assert not again.done()
    assert not other.done()
    notifier.changed(1, version=2)
    await asyncio.wait_for(again, timeout=1.0)
    assert not other.done()
    other.cancel()


async def test_without_a_gap_a_change_releases_at_once() -> None:
    notifier = QueueNotifier()
    waiting = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=1)
    await asyncio.wait_for(waiting, timeout=0.05)


async def test_the_wait_ends_after_its_timeout_without_a_change() -> None:
    notifier = QueueNotifier(gap_s=GAP_S)
    t0 = time.monotonic()
    await notifier.wait(1, timeout_s=0.1)
    assert 0.09 <= time.monotonic() - t0 < 1.0
