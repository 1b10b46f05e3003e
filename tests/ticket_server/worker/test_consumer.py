"""The consumer loop against real Redis and the real test database."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
import redis
from sqlalchemy import Engine

from shared import keys
from tests.ticket_server.worker.conftest import MakeWorker, drain
from tests.ticket_server.worker.support import (
    Catalog,
    cancelled,
    completed,
    db_state,
    dead_letters,
    expected_state,
    push,
)
from ticket_server.worker.metrics import group_backlog

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]


def _sample(worker_metrics: object, name: str, labels: dict[str, str] | None = None) -> float:
    value = worker_metrics.registry.get_sample_value(name, labels or {})  # type: ignore[attr-defined]
    return float(value or 0.0)


class TestConsume:
    def test_events_become_rows_exactly_once_across_redelivery_and_restart(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s0, s1 = catalog.session_ids
        events = [completed(s0 if i % 2 else s1, i + 1, [catalog.seats[i]]) for i in range(30)]
        push(redis_sync, *events)
        w1 = make_worker("w1", batch_size=7)
        drain(w1)
        state = db_state(clean_db)
        assert state == expected_state(events)
        assert (
            _sample(
                w1.metrics,
                "boxoffice_worker_events_applied_total",
                {"type": "reservation.completed"},
            )
            == 30
        )
        assert group_backlog(redis_sync).lag == 0
        assert group_backlog(redis_sync).streams == 2

        push(redis_sync, *events)  # the same events delivered again
        w2 = make_worker("w2-restarted")
        drain(w2)
        assert db_state(clean_db) == state
        assert group_backlog(redis_sync).lag == 0

    def test_group_sees_entries_written_before_it_existed(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        w = make_worker()
        w.step()  # nothing registered yet
        early = completed(catalog.session_ids[1], 1, [catalog.seats[0]])
        push(redis_sync, early)
        time.sleep(0.06)  # past the discovery interval
        drain(w)
        assert early.reservation_id in db_state(clean_db).reservations

    def test_cancellation_through_the_stream(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s = catalog.session_ids[0]
        a, b = completed(s, 1, [catalog.seats[0]]), completed(s, 2, [catalog.seats[1]])
        push(redis_sync, a, b, cancelled(a))
        # The seat of the cancelled reservation sold again, later in the stream.
        c = completed(s, 3, [catalog.seats[0]])
        push(redis_sync, c)
        w = make_worker(batch_size=2)
        drain(w)
        assert db_state(clean_db) == expected_state([a, b, cancelled(a), c])

    def test_cancel_applied_before_its_completion_wins(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s = catalog.session_ids[0]
        a = completed(s, 1, [catalog.seats[0], catalog.seats[1]])
        push(redis_sync, a)
        dying = make_worker("dying")
        dying.discover()
        assert len(dying.read()) == 1  # delivered, never applied: this consumer "dies"
        push(redis_sync, cancelled(a))
        survivor = make_worker("survivor", claim_idle_ms=100)
        drain(survivor)
        assert db_state(clean_db).reservations[a.reservation_id][0] == "cancelled"
        time.sleep(0.15)
        drain(survivor)  # re-claims the completion, which must not resurrect the seats
        assert db_state(clean_db) == expected_state([a, cancelled(a)])
        assert db_state(clean_db).reservations[a.reservation_id] == ("cancelled", 1, 2)
        assert group_backlog(redis_sync).lag == 0

    def test_finished_sessions_leave_the_registry_and_come_back_with_an_event(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        done, busy = catalog.session_ids
        a, b = completed(done, 1, [catalog.seats[0]]), completed(busy, 2, [catalog.seats[300]])
        push(redis_sync, a, b)
        w = make_worker("w", forget_idle_ms=0)
        drain(w)
        stuck = make_worker("stuck")  # holds b's session's next event pending
        c = completed(busy, 3, [catalog.seats[301]])
        push(redis_sync, c)
        stuck.discover()
        assert len(stuck.read()) == 1
        assert w.forget_finished_streams() == 1  # the busy one has an entry pending
        assert redis_sync.smembers(keys.EVENT_STREAMS) == {str(busy)}
        assert w.streams == {keys.events_stream(busy)}
        # A late event registers its session again first (as confirm and cancel do).
        push(redis_sync, cancelled(a))
        w.discover()
        drain(w)
        assert db_state(clean_db).reservations[a.reservation_id][0] == "cancelled"

    def test_dead_consumers_pending_entries_are_reclaimed(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s = catalog.session_ids[0]
        events = [completed(s, i + 1, [catalog.seats[i]]) for i in range(12)]
        push(redis_sync, *events)
        dead = make_worker("dead", batch_size=5)
        dead.discover()
        assert len(dead.read()) == 5
        # Idle long enough that the first drain cannot claim them on a slow (shared) machine.
        live = make_worker("live", claim_idle_ms=1000)
        drain(live)
        assert len(db_state(clean_db).reservations) == 7  # the dead one's 5 are still pending
        assert group_backlog(redis_sync).pending == 5
        time.sleep(1.05)
        drain(live)
        assert db_state(clean_db) == expected_state(events)
        assert _sample(live.metrics, "boxoffice_worker_claimed_total") == 5
        assert group_backlog(redis_sync).lag == 0

    def test_unparseable_entry_goes_to_dead_letters_and_does_not_block(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s = catalog.session_ids[0]
        a, b = completed(s, 1, [catalog.seats[0]]), completed(s, 2, [catalog.seats[1]])
        push(redis_sync, a)
        bad_id = redis_sync.xadd(keys.events_stream(s), {"type": "reservation.completed", "x": "1"})
        push(redis_sync, b)
        w = make_worker()
        drain(w)
        assert db_state(clean_db) == expected_state([a, b])
        dlq = dead_letters(redis_sync)
        assert len(dlq) == 1
        _, letter = dlq[0]
        assert letter["entry_id"] == bad_id
        assert letter["reason"] == "unparseable"
        assert letter["stream"] == keys.events_stream(s)
        assert orjson.loads(letter["fields"]) == {"type": "reservation.completed", "x": "1"}
        assert (
            _sample(w.metrics, "boxoffice_worker_dead_letters_total", {"reason": "unparseable"})
            == 1
        )
        assert group_backlog(redis_sync).lag == 0

    def test_refused_event_is_retried_then_dead_lettered_without_holding_back_others(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s = catalog.session_ids[0]
        good = [completed(s, i + 1, [catalog.seats[i]]) for i in range(5)]
        bad = completed(s, 99, [10**9])  # no such seat: the database refuses it
        push(redis_sync, *good[:2], bad, *good[2:])
        first = make_worker("first", max_attempts=3)  # re-claims only after a minute
        drain(first)
        assert db_state(clean_db) == expected_state(good)  # the good ones did not wait
        assert group_backlog(redis_sync).pending == 1
        assert dead_letters(redis_sync) == []

        retrier = make_worker("retrier", claim_idle_ms=30, max_attempts=3)
        deadline = time.monotonic() + 10
        while group_backlog(redis_sync).lag and time.monotonic() < deadline:
            retrier.step()
            time.sleep(0.04)
        assert group_backlog(redis_sync).lag == 0
        ((_, letter),) = dead_letters(redis_sync)
        assert letter["reason"] == "max_attempts"
        assert letter["deliveries"] == "4"  # 1 read + 2 re-claims refused, the 4th gives up
        assert _sample(first.metrics, "boxoffice_worker_apply_failures_total") == 1
        assert _sample(retrier.metrics, "boxoffice_worker_apply_failures_total") == 2
        assert (
            _sample(
                retrier.metrics, "boxoffice_worker_dead_letters_total", {"reason": "max_attempts"}
            )
            == 1
        )
        assert db_state(clean_db) == expected_state(good)

    def test_two_workers_race_on_the_same_streams(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s0, s1 = catalog.session_ids
        done = [completed(s0 if i % 2 else s1, i + 1, [catalog.seats[i]]) for i in range(300)]
        cancels = [cancelled(e) for e in done[::7]]
        workers = [make_worker(f"racer{i}", batch_size=16) for i in range(2)]
        threads = [threading.Thread(target=w.run) for w in workers]
        for t in threads:
            t.start()
        try:
            for i in range(0, 300, 30):  # keep writing while both consume
                push(redis_sync, *done[i : i + 30])
                push(
                    redis_sync,
                    *[
                        c
                        for c in cancels
                        if c.reservation_id in {e.reservation_id for e in done[i : i + 30]}
                    ],
                )
                time.sleep(0.01)
            deadline = time.monotonic() + 20
            while group_backlog(redis_sync).lag and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            for w in workers:
                w.stop()
            for t in threads:
                t.join(5)
        assert not any(t.is_alive() for t in threads)
        assert group_backlog(redis_sync).lag == 0
        assert db_state(clean_db) == expected_state([*done, *cancels])
        applied = [
            _sample(
                w.metrics,
                "boxoffice_worker_events_applied_total",
                {"type": "reservation.completed"},
            )
            for w in workers
        ]
        assert sum(applied) == 300
        assert all(n > 0 for n in applied), applied  # both really took part

    def test_stop_while_the_database_is_down_leaves_entries_pending(
        self, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        from boxoffice.ports import free_port
        from shared.db.engine import make_engine

        push(redis_sync, completed(catalog.session_ids[0], 1, [catalog.seats[0]]))
        down = make_engine(f"mysql+pymysql://root@127.0.0.1:{free_port()}/nothing")
        w = make_worker()
        w.engine = down
        t = threading.Thread(target=w.run)
        t.start()
        deadline = time.monotonic() + 5
        while w.db_ok is not False and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.db_ok is False
        assert _sample(w.metrics, "boxoffice_worker_db_errors_total") >= 1
        w.stop()
        t.join(5)
        assert not t.is_alive()
        down.dispose()
        assert group_backlog(redis_sync).pending == 1  # not acknowledged: nothing lost

    def test_idle_consumers_without_pending_entries_are_forgotten(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s = catalog.session_ids[0]
        push(redis_sync, *[completed(s, i + 1, [catalog.seats[i]]) for i in range(4)])
        holder = make_worker("holder", batch_size=2)
        holder.discover()
        assert len(holder.read()) == 2  # dies holding two entries
        drain(make_worker("finished"))  # applies the other two, then "dies" with nothing
        time.sleep(0.12)
        janitor = make_worker("janitor", forget_idle_ms=100, claim_idle_ms=60_000)
        janitor.discover()
        assert janitor.forget_idle_consumers() == 1
        stream = keys.events_stream(s)
        names = {c["name"] for c in redis_sync.xinfo_consumers(stream, keys.WORKER_GROUP)}
        assert "finished" not in names
        assert "holder" in names  # still owns pending entries: kept until they are re-claimed

    def test_transactions_stay_within_batch_size_across_busy_streams(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s0, s1 = catalog.session_ids
        events = [completed(s0 if i % 2 else s1, i + 1, [catalog.seats[i]]) for i in range(20)]
        push(redis_sync, *events)
        w = make_worker(batch_size=5)  # COUNT 5 per stream: reads of up to 10 entries
        drain(w)
        assert db_state(clean_db) == expected_state(events)
        batches = _sample(w.metrics, "boxoffice_worker_batch_size_count")
        assert batches == 4
        assert _sample(w.metrics, "boxoffice_worker_batch_size_bucket", {"le": "5.0"}) == batches

    def test_recovers_when_a_stream_and_its_group_vanish(
        self, clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
    ) -> None:
        s = catalog.session_ids[0]
        first = completed(s, 1, [catalog.seats[0]])
        push(redis_sync, first)
        w = make_worker()
        t = threading.Thread(target=w.run)
        t.start()
        try:
            deadline = time.monotonic() + 10
            while first.reservation_id not in db_state(clean_db).reservations:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            redis_sync.delete(keys.events_stream(s))  # e.g. a Redis restarted without its data
            time.sleep(0.1)
            later = completed(s, 2, [catalog.seats[1]])
            push(redis_sync, later)
            while later.reservation_id not in db_state(clean_db).reservations:
                assert time.monotonic() < deadline, "worker did not recover"
                time.sleep(0.02)
        finally:
            w.stop()
            t.join(5)
        assert not t.is_alive()

    def test_waits_out_a_redis_outage(self, clean_db: Engine, catalog: Catalog) -> None:
        from tests.fixtures.services import EmbeddedRedis
        from ticket_server.worker.consumer import Worker, WorkerOptions

        s = catalog.session_ids[0]
        with EmbeddedRedis() as server:  # a private server this test may stop
            client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1)
            producer = redis.Redis.from_url(server.url, decode_responses=True)
            w = Worker(
                redis_client=client,
                engine=clean_db,
                options=WorkerOptions(
                    consumer="w",
                    block_ms=50,
                    discover_interval_s=0.05,
                    backoff_base_s=0.01,
                    backoff_cap_s=0.1,
                ),
            )
            t = threading.Thread(target=w.run)
            t.start()
            try:
                first = completed(s, 1, [catalog.seats[0]])
                push(producer, first)
                deadline = time.monotonic() + 15
                while first.reservation_id not in db_state(clean_db).reservations:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                server.stop()
                while w.redis_ok is not False:
                    assert time.monotonic() < deadline, "outage not noticed"
                    time.sleep(0.02)
                server.start()  # back, empty (no persistence)
                later = completed(s, 2, [catalog.seats[1]])
                push(producer, later)
                while later.reservation_id not in db_state(clean_db).reservations:
                    assert time.monotonic() < deadline, "worker did not come back"
                    time.sleep(0.02)
                assert w.redis_ok
            finally:
                w.stop()
                t.join(5)
                client.close()
                producer.close()
        assert not t.is_alive()
