"""The SSE notifier: a change after a quiet spell wakes a session's streams at once, changes
within the gap after it coalesce into one more release, the snapshot is read once before
anyone wakes, and a large fan-out is spread over turns of the event loop."""

from __future__ import annotations

import asyncio
import time

from gateway.queue.notifier import WAKE_CHUNK, QueueNotifier

GAP_S = 0.2


async def test_a_change_after_a_quiet_spell_releases_at_once_and_the_next_after_the_gap() -> None:
    notifier = QueueNotifier(gap_s=GAP_S)
    woke: list[float] = []

    async def stream() -> None:
        await notifier.wait(1, timeout_s=5.0)
        woke.append(time.monotonic())

    streams = [asyncio.create_task(stream()) for _ in range(50)]
    await asyncio.sleep(0)  # every stream is waiting
    t0 = time.monotonic()
    notifier.changed(1, version=1)
    await asyncio.wait_for(asyncio.gather(*streams), timeout=1.0)
    assert len(woke) == 50
    assert all(t - t0 < GAP_S / 2 for t in woke)  # no gap before the first release

    again = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=2)
    notifier.changed(1, version=3)  # within the gap: the same release
    await asyncio.sleep(GAP_S / 2)
    assert not again.done()  # not before the gap
    await asyncio.wait_for(again, timeout=1.0)
    assert time.monotonic() - t0 >= GAP_S * 0.9
    last = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(GAP_S * 1.5)
    assert not last.done()  # versions 2 and 3 were one release
    last.cancel()


async def test_the_same_version_is_no_change_and_another_session_is_not_woken() -> None:
    notifier = QueueNotifier(gap_s=GAP_S)
    other = asyncio.create_task(notifier.wait(2, timeout_s=5.0))
    first = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=1)
    await asyncio.wait_for(first, timeout=1.0)
    again = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=1)  # the same version: nothing new
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
    assert not notifier._waiters  # a timed-out stream leaves nothing behind


async def test_the_snapshot_is_read_once_before_any_stream_wakes() -> None:
    reads: list[int] = []
    woke_after: list[int] = []

    async def prepare(session_id: int) -> None:
        await asyncio.sleep(0.01)  # a Redis round trip
        reads.append(session_id)

    notifier = QueueNotifier(gap_s=GAP_S, prepare=prepare)

    async def stream() -> None:
        await notifier.wait(7, timeout_s=5.0)
        woke_after.append(len(reads))

    streams = [asyncio.create_task(stream()) for _ in range(20)]
    await asyncio.sleep(0)
    notifier.changed(7, version=1)
    await asyncio.wait_for(asyncio.gather(*streams), timeout=1.0)
    assert reads == [7]
    assert woke_after == [1] * 20


async def test_a_large_fan_out_lets_the_event_loop_run_between_chunks() -> None:
    """Woken in one turn, 10,000 streams sent nothing until the last one was done (the HTTP
    protocol's write goes out in a call_soon, behind them all), and every other request
    waited meanwhile."""
    notifier = QueueNotifier()
    order: list[str] = []
    n = WAKE_CHUNK * 4

    async def stream() -> None:
        await notifier.wait(1, timeout_s=5.0)
        order.append("stream")

    async def other_request() -> None:
        while len([o for o in order if o == "stream"]) < n:
            order.append("other")
            await asyncio.sleep(0)

    streams = [asyncio.create_task(stream()) for _ in range(n)]
    await asyncio.sleep(0)
    notifier.changed(1, version=1)
    other = asyncio.create_task(other_request())
    await asyncio.wait_for(asyncio.gather(*streams), timeout=5.0)
    await other
    first, last = order.index("stream"), len(order) - 1 - order[::-1].index("stream")
    between = order[first:last].count("other")
    assert between >= 3  # the loop ran other work at least once per chunk


async def test_a_change_during_a_fan_out_gets_a_release_of_its_own() -> None:
    notifier = QueueNotifier(gap_s=0.05)
    gate = asyncio.Event()

    async def prepare(session_id: int) -> None:
        await gate.wait()

    notifier.prepare = prepare
    first = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=1)
    await asyncio.sleep(0.01)  # the release reads the snapshot now
    notifier.changed(1, version=2)  # after that read: its streams need another release
    gate.set()
    await asyncio.wait_for(first, timeout=1.0)
    second = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.wait_for(second, timeout=1.0)


async def test_the_gap_grows_to_the_last_fan_outs_duration() -> None:
    async def slow_prepare(session_id: int) -> None:
        await asyncio.sleep(0.3)  # a fan-out that took 0.3 s

    notifier = QueueNotifier(gap_s=0.05, prepare=slow_prepare)
    first = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=1)
    await asyncio.wait_for(first, timeout=1.0)
    done_at = time.monotonic()
    second = asyncio.create_task(notifier.wait(1, timeout_s=5.0))
    await asyncio.sleep(0)
    notifier.changed(1, version=2)
    await asyncio.wait_for(second, timeout=2.0)
    # Released no sooner than 0.3 s after the first ended, plus its own 0.3 s read.
    assert time.monotonic() - done_at >= 0.55
