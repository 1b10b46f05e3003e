"""An event that can never apply goes to the dead-letter stream at once, with its reason,
and is acknowledged: nothing stays pending, the lag returns to 0. What Redis hands out
again after losing its data (a rank, a seat already stored) is such an event."""

from __future__ import annotations

import time

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

pytestmark = pytest.mark.integration


def test_a_rank_given_twice_is_dead_lettered_at_once(
    clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
) -> None:
    s = catalog.session_ids[0]
    first = completed(s, 1, [catalog.seats[0]])
    again = completed(s, 1, [catalog.seats[1]])  # rank 1 handed out again after a loss
    later = completed(s, 2, [catalog.seats[2]])
    push(redis_sync, first, again, later)
    w = make_worker()  # re-claims only after a minute: nothing may wait for that
    drain(w)
    assert db_state(clean_db) == expected_state([first, later])
    assert group_backlog(redis_sync).lag == 0
    ((_, letter),) = dead_letters(redis_sync)
    assert letter["reason"] == "rank_taken"
    assert first.reservation_id in letter["detail"]
    assert again.reservation_id in letter["fields"]


def test_a_seat_sold_again_is_dead_lettered_at_once(
    clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
) -> None:
    s = catalog.session_ids[0]
    first = completed(s, 1, list(catalog.seats[:2]))
    again = completed(s, 2, [catalog.seats[1], catalog.seats[5]])
    push(redis_sync, first, again)
    w = make_worker()
    drain(w)
    assert db_state(clean_db) == expected_state([first])
    assert group_backlog(redis_sync).lag == 0
    ((_, letter),) = dead_letters(redis_sync)
    assert letter["reason"] == "seat_taken"
    assert f"{catalog.seats[1]} ({first.reservation_id})" in letter["detail"]
    assert (
        w.metrics.registry.get_sample_value(
            "boxoffice_worker_dead_letters_total", {"reason": "seat_taken"}
        )
        == 1
    )


def test_a_seat_whose_holder_is_being_cancelled_waits_for_it(
    clean_db: Engine, catalog: Catalog, redis_sync: redis.Redis, make_worker: MakeWorker
) -> None:
    """The seat's cancellation is in Redis but not in the database yet (another consumer
    holds it): the resale stays pending and applies once the seat is free."""
    s = catalog.session_ids[0]
    first = completed(s, 1, [catalog.seats[0]])
    push(redis_sync, first)
    drain(make_worker("early"))
    redis_sync.hset(keys.reservation(s, first.reservation_id), "status", "cancelled")
    resale = completed(s, 2, [catalog.seats[0]])
    push(redis_sync, resale)
    drain(make_worker("w"))
    assert group_backlog(redis_sync).pending == 1
    assert dead_letters(redis_sync) == []
    push(redis_sync, cancelled(first))  # the cancellation arrives
    w = make_worker("retrier", claim_idle_ms=30)
    deadline = time.monotonic() + 10
    while group_backlog(redis_sync).lag and time.monotonic() < deadline:
        w.step()
        time.sleep(0.04)
    assert group_backlog(redis_sync).lag == 0
    assert dead_letters(redis_sync) == []
    assert db_state(clean_db) == expected_state([first, cancelled(first), resale])
