"""The worker keeps draining after its Redis is flushed mid-run (private server): it sets
its consumer group up again on the streams registered afresh."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine

from shared.events import ReservationCompleted
from tests.fixtures.redis_server import RedisProcess
from tests.ticket_server.worker.support import Catalog, completed, db_state, push
from ticket_server.worker.consumer import Worker, WorkerOptions
from ticket_server.worker.metrics import WorkerMetrics, group_backlog

pytestmark = pytest.mark.integration


def test_keeps_draining_after_a_flushall(clean_db: Engine, catalog: Catalog) -> None:
    s0, s1 = catalog.session_ids
    with RedisProcess() as server, server.client() as admin, server.client() as client:
        worker = Worker(
            redis_client=client,
            engine=clean_db,
            # Every housekeeping call runs often, so each meets the vanished streams.
            options=WorkerOptions(
                consumer="w",
                block_ms=200,
                discover_interval_s=0.05,
                claim_idle_ms=100,
                forget_idle_ms=10,
                backoff_base_s=0.01,
                backoff_cap_s=0.05,
            ),
            metrics=WorkerMetrics(),
        )
        t = threading.Thread(target=worker.run)
        t.start()
        try:
            before = [completed(s, i + 1, [catalog.seats[i]]) for i, s in enumerate((s0, s1))]
            push(admin, *before)

            def stored(*events: ReservationCompleted) -> bool:
                have = db_state(clean_db).reservations
                return all(e.reservation_id in have for e in events)

            deadline = time.monotonic() + 10
            while not stored(*before):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            admin.flushall()
            time.sleep(0.3)  # the worker meets the vanished streams (blocked read, claims)
            after = [completed(s, i + 3, [catalog.seats[i + 2]]) for i, s in enumerate((s0, s1))]
            push(admin, *after)
            while not stored(*after):
                assert time.monotonic() < deadline, "the worker did not recover"
                time.sleep(0.02)
            while group_backlog(admin).lag:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert worker.redis_ok
        finally:
            worker.stop()
            t.join(5)
        assert not t.is_alive()
