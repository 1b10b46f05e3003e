"""Seat maps are loaded from the catalog once, under a lock, however many first requests
(and instances) race for it; unknown sessions are 404."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from shared import keys
from shared.schemas.ticketing import SeatMap
from svckit.redis_client import make_async_redis, make_pipelined, resolve
from tests.ticket_server.conftest import CatalogSession, User, create_session
from tests.ticket_server.helpers import assert_problem, statuses
from ticket_server.inventory import repository
from ticket_server.inventory.repository import SeatRow
from ticket_server.inventory.service import SessionMeta
from ticket_server.scripts import register_scripts

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]


@pytest.fixture
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count (and slow down) catalog loads so that racing first requests overlap."""
    calls: list[int] = []
    lock = threading.Lock()
    real = repository.load_session_seats

    def counting(engine, session_id):
        with lock:
            calls.append(session_id)
        time.sleep(0.2)
        return real(engine, session_id)

    monkeypatch.setattr("ticket_server.inventory.service.load_session_seats", counting)
    return calls


async def test_concurrent_first_requests_on_two_instances_load_once(
    make_client, session: CatalogSession, load_calls, redis_sync, monkeypatch
):
    builds: list[int] = []
    real_of = SessionMeta.of

    def counting_of(cls, seats):
        builds.append(len(seats))
        return real_of(seats)

    monkeypatch.setattr(SessionMeta, "of", classmethod(counting_of))
    a, b = await make_client(), await make_client()
    sid = session.session_id
    users = [User.new() for _ in range(20)]
    rs = await asyncio.gather(
        *(
            (a if i % 2 else b).get(f"/api/ticketing/sessions/{sid}/seats", headers=u.headers(sid))
            for i, u in enumerate(users)
        ),
        *(
            (a if i % 2 else b).post(
                f"/api/ticketing/sessions/{sid}/holds",
                headers=u.headers(sid),
                json={"seat_ids": [session.seat_ids[i]]},
            )
            for i, u in enumerate(users[:10])
        ),
    )
    assert [r.status_code for r in rs] == [200] * 20 + [201] * 10
    assert load_calls == [sid]
    # The seat metadata is built once per instance, not once per concurrent request.
    assert builds == [len(session.seat_ids)] * 2
    assert redis_sync.sismember(keys.EVENT_STREAMS, str(sid))
    assert int(redis_sync.hget(keys.session_info(sid), "seat_count")) == len(session.seat_ids)
    assert not redis_sync.exists(keys.inventory_lock(sid))


async def test_seat_map_shape(client, session: CatalogSession):
    u = User.new()
    sid = session.session_id
    r = await client.get(f"/api/ticketing/sessions/{sid}/seats", headers=u.headers(sid))
    body = r.json()
    assert r.headers["content-type"] == "application/json"
    SeatMap.model_validate_json(r.content)  # the documented schema
    assert body["session_id"] == sid
    assert [s["seat_id"] for s in body["seats"]] == session.seat_ids
    first = body["seats"][0]
    assert set(first) == {"seat_id", "label", "grade", "price", "status"}
    assert first["label"] == "A-1"
    assert first["grade"] == "VIP"
    assert first["price"] == 150000  # a JSON number, like the catalog's prices
    assert {s["status"] for s in body["seats"]} == {"available"}


async def test_seat_map_is_in_the_openapi_schema(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    op = r.json()["paths"]["/api/ticketing/sessions/{session_id}/seats"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SeatMap"
    )


async def test_unknown_session_is_404_for_every_racer(make_client, session, load_calls):
    client = await make_client()
    u = User.new()
    sid = session.session_id + 999
    rs = await asyncio.gather(
        *(
            client.get(f"/api/ticketing/sessions/{sid}/seats", headers=u.headers(sid))
            for _ in range(5)
        )
    )
    for r in rs:
        assert_problem(r, 404)


async def test_seat_map_reloads_after_redis_lost_it(client, session, redis_sync):
    u = User.new()
    sid = session.session_id
    assert set((await statuses(client, u, sid)).values()) == {"available"}
    redis_sync.flushdb()  # our own test DB index: as if Redis lost the session's keys
    assert set((await statuses(client, u, sid)).values()) == {"available"}
    r = await client.post(
        f"/api/ticketing/sessions/{sid}/holds",
        headers=u.headers(sid),
        json={"seat_ids": session.seat_ids[:1]},
    )
    assert r.status_code == 201


async def test_session_without_seats(client, clean_db):
    s = create_session(clean_db, seats=0)
    u = User.new()
    assert await statuses(client, u, s.session_id) == {}


async def test_a_hung_catalog_is_a_quick_503(make_client, session, monkeypatch):
    def hung(engine, session_id):
        time.sleep(2)  # a database that does not answer (pymysql has no read timeout)

    monkeypatch.setattr("ticket_server.inventory.service.load_session_seats", hung)
    client = await make_client(inventory_load_wait_s=0.3)
    u = User.new()
    sid = session.session_id
    started = time.monotonic()
    r = await client.get(f"/api/ticketing/sessions/{sid}/seats", headers=u.headers(sid))
    assert_problem(r, 503)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("client_kind", ["redis-py", "pipelined"])
async def test_seat_map_script_reports_taken_seats_from_the_raw_states(
    redis_url: str, redis_sync, client_kind: str
) -> None:
    """``seat_map.lua`` decides each status in Redis, by the server's clock."""
    secs, micros = redis_sync.time()
    now = secs * 1000 + micros // 1000
    redis_sync.hset(
        keys.seats(990),
        mapping={
            "1": "A",
            "2": "S:res-1",
            "3": f"H:hold-1:{now + 60_000}",  # held for another minute
            "4": f"H:hold-2:{now - 1}",  # expired: available
            "5": f"H:hold-3:{now - 5000}",
            "6": "?",  # an unknown state is not shown as taken
            "7": "S:res-2",
            "8": "Sx",
        },
    )
    options = resolve(redis_url, timeout_s=2.0, decode_responses=True)
    redis = make_async_redis(options)
    pipelined = make_pipelined(options)
    assert pipelined is not None
    try:
        scripts = register_scripts(redis, pipelined if client_kind == "pipelined" else None)
        count, sold, held = await scripts.seat_map(keys=[keys.seats(990)])
        assert (count, sorted(sold.split(",")), held) == (8, ["2", "7"], "3")
        assert await scripts.seat_map(keys=[keys.seats(991)]) == [0, "", ""]
    finally:
        await pipelined.aclose()
        await redis.aclose()


def test_rendered_seat_statuses_follow_the_taken_ids() -> None:
    meta = SessionMeta.of([SeatRow(i, f"A-{i}", "R", "10.50") for i in range(1, 8)])
    # Ids in any order (hash order); one the metadata does not know is ignored.
    body = b'{"session_id":1,"seats":[%b]}' % b",".join(meta.render("5,2,99", "3"))
    seat_map = SeatMap.model_validate_json(body)
    assert [(s.seat_id, s.label, s.status) for s in seat_map.seats] == [
        (1, "A-1", "available"),
        (2, "A-2", "sold"),
        (3, "A-3", "held"),
        (4, "A-4", "available"),
        (5, "A-5", "sold"),
        (6, "A-6", "available"),
        (7, "A-7", "available"),
    ]
    assert str(seat_map.seats[0].price) == "10.5"
    assert meta.render("", "") == meta.available
