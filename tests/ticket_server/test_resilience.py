"""Failure modes: a flushed script cache (NOSCRIPT) is invisible to clients, and an
unreachable Redis is a quick 503, never a 500, a hang or a half-written reservation.
Each test breaks only a private Redis it started itself."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from importlib import resources

import pytest
import redis

from shared import keys
from tests.fixtures.services import EmbeddedRedis
from tests.ticket_server.conftest import CatalogSession, User
from tests.ticket_server.helpers import assert_problem, book, hold, reserve
from ticket_server.inventory.service import Inventory

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, which it may flush, stop and restart."""
    with EmbeddedRedis() as server:
        yield server


async def test_noscript_after_script_flush_is_handled(
    make_client, session: CatalogSession, private_redis: EmbeddedRedis
):
    client = await make_client(redis_url=private_redis.url)
    sid, seats = session.session_id, session.seat_ids
    u = User.new()
    await book(client, u, sid, seats[:1])
    direct = redis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        confirm_sha = hashlib.sha1(
            (resources.files("ticket_server.scripts") / "confirm.lua").read_bytes()
        ).hexdigest()
        assert direct.script_exists(confirm_sha) == [True]
        direct.script_flush()  # private server only: never on the shared one
        assert direct.script_exists(confirm_sha) == [False]
        res = await book(client, u, sid, seats[1:2])
        assert direct.script_exists(confirm_sha) == [True]  # reloaded after NOSCRIPT
        assert res["rank"] == 2
        hold_id = (await hold(client, u, sid, seats[2:3])).json()["hold_id"]
        direct.script_flush()
        r = await client.delete(f"/api/ticketing/holds/{hold_id}", headers=u.auth())
        assert r.status_code == 204
        direct.script_flush()
        rid = res["reservation_id"]
        r = await client.delete(f"/api/ticketing/reservations/{rid}", headers=u.auth())
        assert r.status_code == 204
        assert direct.xlen(keys.events_stream(sid)) == 3
    finally:
        direct.close()


async def test_redis_down_is_a_quick_503_and_nothing_half_written(
    make_client, session: CatalogSession, private_redis: EmbeddedRedis
):
    client = await make_client(
        redis_url=private_redis.url, redis_socket_timeout_s=0.5, redis_connect_timeout_s=0.3
    )
    sid, seats = session.session_id, session.seat_ids
    u = User.new()
    await book(client, u, sid, seats[:1])
    hold_id = (await hold(client, u, sid, seats[1:3])).json()["hold_id"]
    key = uuid.uuid4().hex

    private_redis.stop()
    try:
        attempts = [
            ("GET", f"/api/ticketing/sessions/{sid}/seats", None, u.headers(sid)),
            (
                "POST",
                f"/api/ticketing/sessions/{sid}/holds",
                {"seat_ids": [seats[5]]},
                u.headers(sid),
            ),
            (
                "POST",
                "/api/ticketing/reservations",
                {"hold_id": hold_id},
                u.headers(sid, **{"Idempotency-Key": key}),
            ),
            ("GET", "/api/ticketing/me/reservations", None, u.auth()),
            ("DELETE", f"/api/ticketing/holds/{hold_id}", None, u.auth()),
        ]
        for method, path, body, headers in attempts:
            started = time.monotonic()
            r = await client.request(method, path, json=body, headers=headers)
            elapsed = time.monotonic() - started
            assert_problem(r, 503)
            assert r.headers["retry-after"] == "1"
            assert elapsed < 2.0, (path, elapsed)
        r = await client.get("/readyz")
        body = assert_problem(r, 503)
        assert "redis" in body["failing"]
    finally:
        private_redis.start()

    # Back up (same port, empty: persist=False). The client recovers by itself.
    r = await client.get(f"/api/ticketing/sessions/{sid}/seats", headers=u.headers(sid))
    assert r.status_code == 200
    r = await client.post(
        f"/api/ticketing/sessions/{sid}/holds",
        headers=u.headers(sid),
        json={"seat_ids": [seats[5]]},
    )
    assert r.status_code == 201
    assert (await reserve(client, u, sid, r.json()["hold_id"], key=key)).status_code == 201
    direct = redis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        # Exactly one reservation and one event for it: nothing from the failed attempts.
        assert direct.xlen(keys.events_stream(sid)) == 1
        assert direct.get(keys.rank_seq(sid)) == "1"
    finally:
        direct.close()


async def test_a_redis_timeout_on_the_seat_map_is_paid_once(
    make_client, session: CatalogSession, private_redis: EmbeddedRedis, monkeypatch
):
    timeout_s = 0.5
    client = await make_client(redis_url=private_redis.url, redis_socket_timeout_s=timeout_s)
    sid, u = session.session_id, User.new()
    url = f"/api/ticketing/sessions/{sid}/seats"
    assert (await client.get(url, headers=u.headers(sid))).status_code == 200  # loaded
    calls: list[int] = []
    real = Inventory.seat_map_json

    async def counted(self: Inventory, session_id: int) -> bytes:
        calls.append(session_id)
        return await real(self, session_id)

    monkeypatch.setattr(Inventory, "seat_map_json", counted)
    direct = redis.Redis.from_url(private_redis.url)
    try:
        # Every other client's commands wait: the seat map's script times out.
        direct.client_pause(int(6 * timeout_s * 1000), all=True)
        started = time.monotonic()
        r = await client.get(url, headers=u.headers(sid))
        elapsed = time.monotonic() - started
    finally:
        direct.client_unpause()
        direct.close()
    assert_problem(r, 503)
    assert r.headers["retry-after"] == "1"
    assert calls == [sid]  # not asked again through FastAPI
    assert elapsed < 1.8 * timeout_s


async def test_catalog_down_while_loading_is_503(make_client, session: CatalogSession):
    # Nothing listens on port 1: the seat map cannot be loaded, the request says so quickly.
    client = await make_client(database_url="mysql+pymysql://root@127.0.0.1:1/nowhere")
    u = User.new()
    sid = session.session_id
    started = time.monotonic()
    r = await client.get(f"/api/ticketing/sessions/{sid}/seats", headers=u.headers(sid))
    assert_problem(r, 503)
    r = await hold(client, u, sid, session.seat_ids[:1])
    assert_problem(r, 503)
    assert time.monotonic() - started < 5
    body = assert_problem(await client.get("/readyz"), 503)
    assert "database" in body["failing"]
