"""Real reservations through ticket_server (its Lua scripts write the events), drained by
the worker: the database ends up with exactly the confirmed reservations, and the rankings
match Redis."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine

from shared import keys
from tests.ticket_server.conftest import AppFactory, User, create_session
from tests.ticket_server.helpers import book
from tests.ticket_server.worker.conftest import MakeWorker, drain
from tests.ticket_server.worker.support import db_state, dead_letters
from ticket_server.worker.metrics import group_backlog

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]


async def test_booked_and_cancelled_reservations_reach_the_database(
    clean_db: Engine,
    redis_sync: redis.Redis,
    make_client: AppFactory,
    make_worker: MakeWorker,
) -> None:
    rng = random.Random(5)
    cat = create_session(clean_db, seats=60)
    client: httpx.AsyncClient = await make_client()
    free = list(cat.seat_ids)
    booked: list[tuple[User, dict[str, Any]]] = []
    for i in range(24):
        user = User.new(nickname=f"fan{i}")
        seats = [free.pop(rng.randrange(len(free))) for _ in range(rng.randint(1, 2))]
        booked.append((user, await book(client, user, cat.session_id, seats)))
    w = make_worker("e2e", batch_size=5)
    drain(w)  # some now, the rest after the cancellations, as in real life

    gone = set()
    for user, res in rng.sample(booked, 6):
        r = await client.delete(
            f"/api/ticketing/reservations/{res['reservation_id']}", headers=user.auth()
        )
        assert r.status_code == 204, r.text
        gone.add(res["reservation_id"])
    # Cancelled seats sold again to new users.
    resold = [s for _, res in booked if res["reservation_id"] in gone for s in res["seat_ids"]]
    for i, seat in enumerate(resold[:3]):
        user = User.new(nickname=f"late{i}")
        booked.append((user, await book(client, user, cat.session_id, [seat])))
    drain(w)

    state = db_state(clean_db)
    assert state.reservations == {
        res["reservation_id"]: (
            "cancelled" if res["reservation_id"] in gone else "confirmed",
            res["rank"],
            len(res["seat_ids"]),
        )
        for _, res in booked
    }
    live = [res for _, res in booked if res["reservation_id"] not in gone]
    assert state.seats == {
        (cat.session_id, s, res["reservation_id"]) for res in live for s in res["seat_ids"]
    }
    ranked: Any = redis_sync.zrange(keys.ranking(cat.session_id), 0, -1, withscores=True)
    redis_ranking = {rid: int(score) for rid, score in ranked}
    assert {rid: rank for rid, (_, rank, _) in state.rankings.items()} == redis_ranking
    assert {res["reservation_id"]: res["rank"] for res in live} == redis_ranking
    nicknames = {res["reservation_id"]: u.nickname for u, res in booked}
    assert all(nick == nicknames[rid] for rid, (_, _, nick) in state.rankings.items())
    assert group_backlog(redis_sync).lag == 0
    assert dead_letters(redis_sync) == []
