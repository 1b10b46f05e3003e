"""Redis losing its data heals by itself: the seat map is rebuilt from the reservations
the worker already stored, so sold seats stay sold, ranks continue after the highest one,
and each user's seat limit still counts what they booked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, insert, select

from shared import keys
from shared.db.models import Reservation, ReservationSeat
from tests.ticket_server.conftest import CatalogSession, User, create_session
from tests.ticket_server.helpers import assert_problem, book, hold, reserve, statuses
from ticket_server.worker.consumer import Worker, WorkerOptions

pytestmark = pytest.mark.integration


async def drain(redis_sync: redis.Redis, engine: Engine) -> None:
    """Apply every event in the streams to the database, as the worker does."""
    worker = Worker(
        redis_client=redis_sync, engine=engine, options=WorkerOptions(block_ms=10, consumer="t")
    )

    def run() -> None:
        worker.discover()
        while worker.step():
            pass

    await asyncio.to_thread(run)


async def booked_and_lost(
    client: httpx.AsyncClient, redis_sync: redis.Redis, engine: Engine, session: CatalogSession
) -> tuple[User, list[Any]]:
    """A user books three reservations (one seat each), cancels the second; the worker
    stores it all; then Redis loses everything."""
    sid = session.session_id
    user = User.new("early")
    booked = [await book(client, user, sid, [seat]) for seat in session.seat_ids[:3]]
    r = await client.delete(
        f"/api/ticketing/reservations/{booked[1]['reservation_id']}", headers=user.auth()
    )
    assert r.status_code == 204
    await drain(redis_sync, engine)
    with engine.connect() as conn:
        stored = conn.execute(
            select(Reservation.status)
            .where(Reservation.session_id == sid)
            .order_by(Reservation.rank)
        )
        assert stored.scalars().all() == ["confirmed", "cancelled", "confirmed"]
    redis_sync.flushdb()  # our own DB index: as if Redis restarted without persistence
    return user, booked


async def test_sold_seats_stay_sold_and_ranks_continue(client, clean_db, redis_sync):
    session = create_session(clean_db, seats=10)
    sid = session.session_id
    user, booked = await booked_and_lost(client, redis_sync, clean_db, session)
    seats = session.seat_ids
    other = User.new("late")

    assert await statuses(client, other, sid) == {
        s: ("sold" if s in (seats[0], seats[2]) else "available") for s in seats
    }
    body = assert_problem(await hold(client, other, sid, [seats[0]]), 409)
    assert body["conflicting_seat_ids"] == [seats[0]]
    assert int(redis_sync.hget(keys.session_info(sid), "sold")) == 2
    # Ranks are never reused: the next one follows the highest stored (the cancelled 2nd).
    fresh = await book(client, other, sid, [seats[1]])
    assert fresh["rank"] == 4
    await drain(redis_sync, clean_db)
    with clean_db.connect() as conn:
        stored = conn.execute(select(Reservation.id).where(Reservation.session_id == sid))
        assert len(stored.all()) == 4


async def test_reservations_come_back_for_their_owner(client, clean_db, redis_sync):
    session = create_session(clean_db, seats=10)
    sid = session.session_id
    user, booked = await booked_and_lost(client, redis_sync, clean_db, session)
    await statuses(client, user, sid)  # any request of the session restores it

    r = await client.get("/api/ticketing/me/reservations", headers=user.auth())
    assert r.status_code == 200
    mine = {x["reservation_id"]: (x["status"], x["rank"]) for x in r.json()["items"]}
    assert mine == {
        booked[0]["reservation_id"]: ("confirmed", 1),
        booked[1]["reservation_id"]: ("cancelled", 2),
        booked[2]["reservation_id"]: ("confirmed", 3),
    }
    r = await client.get(
        f"/api/ticketing/reservations/{booked[0]['reservation_id']}", headers=user.auth()
    )
    assert r.json() == booked[0]
    # A restored reservation can be cancelled: its seat is free again.
    r = await client.delete(
        f"/api/ticketing/reservations/{booked[0]['reservation_id']}", headers=user.auth()
    )
    assert r.status_code == 204
    assert (await statuses(client, user, sid))[session.seat_ids[0]] == "available"


async def test_the_per_user_limit_counts_stored_reservations(make_client, clean_db, redis_sync):
    client = await make_client(max_seats_per_user=3)
    session = create_session(clean_db, seats=10)
    sid = session.session_id
    user, _ = await booked_and_lost(client, redis_sync, clean_db, session)
    # Two live seats stored: one more is allowed, two are not.
    body = assert_problem(await hold(client, user, sid, session.seat_ids[5:7]), 422)
    assert body["in_use"] == 2
    r = await hold(client, user, sid, session.seat_ids[5:6])
    assert r.status_code == 201, r.text
    assert (await reserve(client, user, sid, r.json()["hold_id"])).status_code == 201


async def test_live_state_in_redis_wins_over_the_database(client, clean_db, redis_sync):
    """Only the "loaded" marker lost: the seats Redis still has are newer than the
    database (the worker lags), so the reload keeps them."""
    session = create_session(clean_db, seats=4)
    sid = session.session_id
    user = User.new()
    first = await book(client, user, sid, session.seat_ids[:1])
    await drain(redis_sync, clean_db)
    second = await book(client, user, sid, session.seat_ids[1:2])  # not stored yet
    redis_sync.delete(keys.session_info(sid))
    assert_problem(await hold(client, User.new(), sid, session.seat_ids[1:2]), 409)
    seen = await statuses(client, user, sid)
    assert [seen[s] for s in session.seat_ids] == ["sold", "sold", "available", "available"]
    assert int(redis_sync.hget(keys.session_info(sid), "sold")) == 2
    assert int(redis_sync.get(keys.rank_seq(sid))) == second["rank"] == first["rank"] + 1


async def test_the_rebuild_waits_for_a_batch_the_worker_is_committing(client, clean_db, redis_sync):
    """The worker had read a batch and inserted it, uncommitted, when Redis lost its data:
    the rebuild waits for that commit instead of selling its seats again."""
    if clean_db.dialect.name != "mysql":
        pytest.skip("SQLite has one writer: nothing to wait for")
    session = create_session(clean_db, seats=4)
    sid = session.session_id
    await statuses(client, User.new(), sid)  # loaded once
    redis_sync.flushdb()
    with clean_db.connect() as conn:
        txn = conn.begin()
        conn.execute(
            insert(Reservation).values(
                id="r_in_flight",
                session_id=sid,
                user_id="u",
                nickname="n",
                status="confirmed",
                rank=7,
                completion_ms=1,
                queue_position=None,
                seat_ids=[session.seat_ids[0]],
                seat_count=1,
                created_at=datetime.now(UTC),
            )
        )
        conn.execute(
            insert(ReservationSeat).values(
                reservation_id="r_in_flight", seat_id=session.seat_ids[0], session_id=sid
            )
        )
        loading = asyncio.create_task(statuses(client, User.new(), sid))
        await asyncio.sleep(0.5)
        waited = not loading.done()  # for the worker's transaction
        txn.commit()
    assert waited
    seen = await asyncio.wait_for(loading, 10)
    assert seen[session.seat_ids[0]] == "sold"
    assert int(redis_sync.get(keys.rank_seq(sid))) == 7
