"""The worker as a real process: ops endpoints, graceful stop, SIGKILL mid-batch, and a
database outage behind a proxy the test controls."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from shared import keys
from shared.events import ReservationCancelled, ReservationCompleted
from tests.ticket_server.worker.process import WorkerProcess
from tests.ticket_server.worker.support import (
    cancelled,
    completed,
    db_state,
    dead_letters,
    expected_state,
    make_catalog,
    push,
)
from tests.ticket_server.worker.tcp_proxy import TcpProxy
from ticket_server.worker.metrics import group_backlog

pytestmark = pytest.mark.integration

Event = ReservationCompleted | ReservationCancelled


@pytest.fixture
def worker_proc(
    clean_db: Engine, database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A worker process on the test database and Redis (started by the test)."""
    wp = WorkerProcess(
        database_url=database_url,
        redis_url=redis_url,
        log_dir=tmp_path,
        claim_idle_ms=500,
        backoff_cap_s=1.0,
        block_ms=100,
        discover_interval_s=0.2,
    )
    yield wp
    wp.ensure_stopped()


def _wait_lag_zero(client: redis.Redis, timeout_s: float, wp: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if group_backlog(client).lag == 0 and group_backlog(client).streams > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"lag stayed {group_backlog(client)}; worker log: {wp.log()}")


def _plan(session_ids: tuple[int, ...], seats: tuple[int, ...], n: int, seed: int) -> list[Event]:
    """``n`` completions on distinct seats, with about one in eight cancelled later on."""
    rng = random.Random(seed)
    events: list[Event] = []
    done: list[ReservationCompleted] = []
    for i in range(n):
        s = session_ids[i % len(session_ids)]
        ev = completed(s, i // len(session_ids) + 1, [seats[i // len(session_ids)]])
        events.append(ev)
        done.append(ev)
        if i > 20 and rng.random() < 0.125:
            events.append(cancelled(done.pop(rng.randrange(len(done) - 10))))
    return events


class _Producer(threading.Thread):
    """Keeps XADDing events at a steady pace, like bookings flowing in, until the plan is
    used up or :meth:`finish` is called; ``pushed`` is what it wrote (a prefix of the plan,
    so every cancellation follows its completion)."""

    def __init__(self, redis_url: str, events: list[Event], chunk: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.events, self.chunk, self.every_s = events, chunk, every_s
        self.pushed: list[Event] = []
        self.slowest_s = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        for i in range(0, len(self.events), self.chunk):
            if self._done.is_set():
                break
            t = time.perf_counter()
            push(self.client, *self.events[i : i + self.chunk])
            self.pushed.extend(self.events[i : i + self.chunk])
            self.slowest_s = max(self.slowest_s, time.perf_counter() - t)
            time.sleep(self.every_s)
        self.client.close()

    def finish(self) -> None:
        """Stop adding events and wait for the thread."""
        self._done.set()
        self.join(30)


class TestWorkerProcess:
    def test_ops_endpoints_and_graceful_stop(
        self, clean_db: Engine, redis_sync: redis.Redis, worker_proc: WorkerProcess
    ) -> None:
        cat = make_catalog(clean_db, seat_count=50)
        events = [completed(cat.session_ids[0], i + 1, [cat.seats[i]]) for i in range(20)]
        push(redis_sync, *events)
        worker_proc.start("--batch-size", "8")
        _wait_lag_zero(redis_sync, 15, worker_proc)
        assert worker_proc.get("/healthz").json() == {"status": "ok"}
        ready = worker_proc.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert worker_proc.metric("boxoffice_worker_events_applied_total") == 20
        assert worker_proc.metric("boxoffice_worker_lag") == 0
        assert worker_proc.metric("boxoffice_worker_batch_size_count") >= 3
        assert worker_proc.get("/nope").status_code == 404
        assert worker_proc.terminate() == 0
        assert db_state(clean_db) == expected_state(events)

    @pytest.mark.slow
    def test_sigkill_mid_batch_loses_and_duplicates_nothing(
        self,
        clean_db: Engine,
        redis_sync: redis.Redis,
        redis_url: str,
        worker_proc: WorkerProcess,
    ) -> None:
        cat = make_catalog(clean_db, seat_count=4000)
        events = _plan(cat.session_ids, cat.seats, 7500, seed=7)  # ~30 s of flow at most
        producer = _Producer(redis_url, events, chunk=30, every_s=0.1)
        worker_proc.start("--batch-size", "200")
        producer.start()
        host = socket.gethostname()
        mid_batch_kills = kills = 0
        rng = random.Random(1)
        while mid_batch_kills < 5 and kills < 25 and producer.is_alive():
            time.sleep(rng.uniform(0.1, 0.4))
            assert worker_proc.proc is not None
            consumer = f"{host}-{worker_proc.proc.pid}"
            # Strike while this consumer holds delivered, unacknowledged entries.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and not _pending_of(redis_sync, consumer):
                time.sleep(0.001)
            worker_proc.kill()
            kills += 1
            if _pending_of(redis_sync, consumer):  # exact: a dead consumer acknowledges nothing
                mid_batch_kills += 1
            worker_proc.start("--batch-size", "200")
        producer.finish()
        assert mid_batch_kills == 5, f"only {mid_batch_kills} of {kills} kills hit a batch"
        _wait_lag_zero(redis_sync, 30, worker_proc)
        assert worker_proc.terminate() == 0
        assert len(producer.pushed) > 500
        assert db_state(clean_db) == expected_state(producer.pushed)
        assert dead_letters(redis_sync) == []

    @pytest.mark.slow
    def test_database_outage_delays_but_loses_nothing(
        self,
        clean_db: Engine,
        database_url: str,
        redis_sync: redis.Redis,
        redis_url: str,
        tmp_path: Path,
    ) -> None:
        url = make_url(database_url)
        if url.get_backend_name() != "mysql":
            pytest.skip(
                "needs a network database to cut (CI runs it on MariaDB); an embedded SQLite "
                "file cannot be made unavailable to a root process without touching the file"
            )
        cat = make_catalog(clean_db, seat_count=800)
        events = _plan(cat.session_ids, cat.seats, 1500, seed=3)
        before, during = events[:300], events[300:]
        with TcpProxy(url.host or "127.0.0.1", url.port or 3306) as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port)
            wp = WorkerProcess(
                database_url=proxied.render_as_string(hide_password=False),
                redis_url=redis_url,
                log_dir=tmp_path,
                claim_idle_ms=2000,
                backoff_cap_s=1.0,
                block_ms=100,
            )
            try:
                push(redis_sync, *before)
                wp.start()
                _wait_lag_zero(redis_sync, 15, wp)

                proxy.cut()
                producer = _Producer(redis_url, during, chunk=20, every_s=0.4)  # ~24 s of it
                producer.start()
                time.sleep(5)
                ready = wp.get("/readyz")
                assert ready.status_code == 503
                assert "database" in ready.json()["failing"]
                time.sleep(25)  # about 30 s without a database in all
                assert group_backlog(redis_sync).lag > 0
                assert wp.metric("boxoffice_worker_db_errors_total") >= 3
                producer.join(10)
                assert producer.pushed == during
                assert producer.slowest_s < 0.5  # writing events never waited on the database

                proxy.restore()
                _wait_lag_zero(redis_sync, 12, wp)
                assert wp.get("/readyz").status_code == 200
                assert wp.metric("boxoffice_worker_lag") == 0
                assert wp.terminate() == 0
            finally:
                wp.ensure_stopped()
        assert db_state(clean_db) == expected_state(events)
        assert dead_letters(redis_sync) == []


def _pending_of(client: redis.Redis, consumer: str) -> int:
    total = 0
    for member in client.smembers(keys.EVENT_STREAMS):
        try:
            info: Any = client.xpending_range(
                keys.events_stream(int(member)),
                keys.WORKER_GROUP,
                "-",
                "+",
                1,
                consumername=consumer,
            )
        except redis.ResponseError:  # the group is not created yet
            continue
        total += len(info)
    return total
