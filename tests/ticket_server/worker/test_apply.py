"""The apply step against the real test database: idempotent, order-tolerant, and refusing
(never silently dropping) what the database cannot hold."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from shared.db.models import Reservation
from tests.ticket_server.worker.support import (
    Catalog,
    cancelled,
    completed,
    db_state,
    expected_state,
)
from ticket_server.worker.apply import BatchConflict, apply_batch

pytestmark = pytest.mark.integration


class TestApplyBatch:
    def test_completed_events_become_rows_once(self, clean_db: Engine, catalog: Catalog) -> None:
        s, seats = catalog.session_ids[0], catalog.seats
        events = [completed(s, 1, [seats[0], seats[1]]), completed(s, 2, [seats[2]])]
        apply_batch(clean_db, events)
        first = db_state(clean_db)
        assert first == expected_state(events)
        assert len(first.seats) == 3

        apply_batch(clean_db, events)  # redelivery
        apply_batch(clean_db, events[::-1])
        assert db_state(clean_db) == first

    def test_cancellation_removes_seats_and_ranking(
        self, clean_db: Engine, catalog: Catalog
    ) -> None:
        s, seats = catalog.session_ids[0], catalog.seats
        a, b = completed(s, 1, [seats[0]]), completed(s, 2, [seats[1]])
        apply_batch(clean_db, [a, b])
        apply_batch(clean_db, [cancelled(a)])
        state = db_state(clean_db)
        assert state.reservations[a.reservation_id][0] == "cancelled"
        assert set(state.rankings) == {b.reservation_id}
        assert state.seats == {(s, seats[1], b.reservation_id)}
        with clean_db.connect() as conn:
            cancelled_at = conn.scalar(
                select(Reservation.cancelled_at).where(Reservation.id == a.reservation_id)
            )
        assert cancelled_at is not None
        # MySQL DATETIME (no fractional seconds in the schema) keeps whole seconds only.
        assert abs((cancelled_at - cancelled(a).cancelled_at).total_seconds()) < 1

        apply_batch(clean_db, [a, cancelled(a), b])  # all of it again
        assert db_state(clean_db) == state == expected_state([a, b, cancelled(a)])

    def test_cancel_before_completion_is_not_resurrected(
        self, clean_db: Engine, catalog: Catalog
    ) -> None:
        s, seats = catalog.session_ids[0], catalog.seats
        a = completed(s, 7, [seats[0], seats[1]])
        b = completed(s, 8, [seats[5]])
        apply_batch(clean_db, [cancelled(a)])  # another worker got the completion, late
        tomb = db_state(clean_db).reservations[a.reservation_id]
        assert tomb[0] == "cancelled"
        assert tomb[1] < 0  # placeholder rank until the facts arrive

        apply_batch(clean_db, [a, b])
        state = db_state(clean_db)
        assert state == expected_state([a, b, cancelled(a)])
        assert state.reservations[a.reservation_id] == ("cancelled", 7, 2)
        apply_batch(clean_db, [a])
        assert db_state(clean_db) == state

    def test_tombstones_of_one_session_get_distinct_placeholder_ranks(
        self, clean_db: Engine, catalog: Catalog
    ) -> None:
        s, seats = catalog.session_ids[0], catalog.seats
        evs = [completed(s, r, [seats[r]]) for r in range(1, 5)]
        apply_batch(clean_db, [cancelled(evs[0]), cancelled(evs[1])])
        apply_batch(clean_db, [cancelled(evs[2])])
        ranks = [r for _, r, _ in db_state(clean_db).reservations.values()]
        assert sorted(ranks) == [-3, -2, -1]
        apply_batch(clean_db, evs)
        assert db_state(clean_db) == expected_state(evs + [cancelled(e) for e in evs[:3]])

    def test_completion_and_cancel_in_one_batch(self, clean_db: Engine, catalog: Catalog) -> None:
        s, seats = catalog.session_ids[1], catalog.seats
        a = completed(s, 1, [seats[0]])
        apply_batch(clean_db, [a, cancelled(a)])
        assert db_state(clean_db) == expected_state([a, cancelled(a)])

    def test_seat_resold_after_cancel_in_the_same_batch(
        self, clean_db: Engine, catalog: Catalog
    ) -> None:
        s, seat = catalog.session_ids[0], catalog.seats[3]
        a = completed(s, 1, [seat])
        b = completed(s, 2, [seat])
        apply_batch(clean_db, [a])
        apply_batch(clean_db, [cancelled(a), b])
        assert db_state(clean_db).seats == {(s, seat, b.reservation_id)}

    def test_seat_held_by_a_live_reservation_is_refused(
        self, clean_db: Engine, catalog: Catalog
    ) -> None:
        s, seat = catalog.session_ids[0], catalog.seats[3]
        a = completed(s, 1, [seat])
        apply_batch(clean_db, [a])
        before = db_state(clean_db)
        # The old holder's cancellation is not in yet: refusing lets it be retried later,
        # ignoring would leave the new reservation without its seat row for good.
        with pytest.raises(IntegrityError):
            apply_batch(clean_db, [completed(s, 2, [seat])])
        assert db_state(clean_db) == before

    def test_unknown_session_is_refused_not_dropped(
        self, clean_db: Engine, catalog: Catalog
    ) -> None:
        good = completed(catalog.session_ids[0], 1, [catalog.seats[0]])
        bad = completed(999_999, 1, [catalog.seats[1]])
        # MySQL's INSERT IGNORE turns the foreign-key failure into a warning: the row count
        # gives it away. SQLite raises directly.
        with pytest.raises((IntegrityError, BatchConflict)):
            apply_batch(clean_db, [good, bad])
        assert db_state(clean_db).reservations == {}

    def test_rank_taken_by_another_reservation_is_refused(
        self, clean_db: Engine, catalog: Catalog
    ) -> None:
        s = catalog.session_ids[0]
        apply_batch(clean_db, [completed(s, 1, [catalog.seats[0]])])
        with pytest.raises((IntegrityError, BatchConflict)):
            apply_batch(clean_db, [completed(s, 1, [catalog.seats[1]])])

    @pytest.mark.parametrize("seed", range(6))
    def test_any_order_any_repetition_converges(
        self, clean_db: Engine, catalog: Catalog, seed: int
    ) -> None:
        rng = random.Random(seed)
        s0, s1 = catalog.session_ids
        done = [
            completed(s0 if i % 3 else s1, i + 1, [catalog.seats[2 * i], catalog.seats[2 * i + 1]])
            for i in range(40)
        ]
        events = done + [cancelled(e) for e in rng.sample(done, 15)]
        stream = events + rng.sample(events, 20)  # redeliveries
        rng.shuffle(stream)
        i = 0
        while i < len(stream):
            n = rng.randint(1, 12)
            apply_batch(clean_db, stream[i : i + n])
            i += n
        assert db_state(clean_db) == expected_state(events)


class TestBulkInsert:
    def test_awkward_text_round_trips_exactly(self, clean_db: Engine, catalog: Catalog) -> None:
        nasty = 'O\'Brien \\ %s %(x)s 100% "q" \n\r\t\x1a\0 ; DROP TABLE seats; -- 😀 ünï'
        ev = completed(catalog.session_ids[0], 1, [catalog.seats[0], catalog.seats[1]])
        ev = ev.model_copy(update={"nickname": nasty[:64], "user_id": "u'\\%s"})
        apply_batch(clean_db, [ev])
        with clean_db.connect() as conn:
            row = conn.execute(select(Reservation).where(Reservation.id == ev.reservation_id)).one()
        assert row.nickname == nasty[:64]
        assert row.user_id == "u'\\%s"
        assert row.seat_ids == [catalog.seats[0], catalog.seats[1]]
        assert abs((row.created_at - ev.created_at).total_seconds()) < 1
        assert row.queue_position == ev.queue_position
        assert db_state(clean_db).rankings[ev.reservation_id][2] == nasty[:64]

    def test_many_rows_span_several_statements(self, clean_db: Engine, catalog: Catalog) -> None:
        from ticket_server.worker import bulk

        s = catalog.session_ids[0]
        events = [completed(s, i + 1, [catalog.seats[i]]) for i in range(350)]
        original = bulk.ROWS_PER_STATEMENT
        bulk.ROWS_PER_STATEMENT = 100
        try:
            apply_batch(clean_db, events)
        finally:
            bulk.ROWS_PER_STATEMENT = original
        assert db_state(clean_db) == expected_state(events)
