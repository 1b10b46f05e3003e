"""Reservations: confirm (atomic with rank, ranking, event, sold-out flag), idempotency,
reading, listing and cancelling."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from shared import keys
from shared.events import ReservationCancelled, ReservationCompleted, parse_event, to_fields
from tests.ticket_server.conftest import CatalogSession, User, create_session
from tests.ticket_server.helpers import assert_problem, book, hold, reserve, statuses

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]


def _events(redis_sync, session_id: int) -> list[dict[str, str]]:
    return [fields for _, fields in redis_sync.xrange(keys.events_stream(session_id))]


class TestConfirm:
    async def test_confirm_sells_ranks_and_emits_one_event(
        self, client, session: CatalogSession, redis_sync
    ):
        u = User.new("alice")
        sid, seats = session.session_id, session.seat_ids
        hold_id = (await hold(client, u, sid, seats[:2])).json()["hold_id"]
        r = await reserve(client, u, sid, hold_id)
        assert r.status_code == 201, r.text
        res = r.json()
        assert res["reservation_id"].startswith(f"r_{sid}_")
        assert res["session_id"] == sid
        assert res["user_id"] == u.user_id
        assert res["seat_ids"] == seats[:2]
        assert res["status"] == "confirmed"
        assert res["rank"] == 1
        assert res["queue_position"] == u.queue_position
        created = datetime.fromisoformat(res["created_at"])
        expected = (created - session.booking_opens_at).total_seconds() * 1000
        assert abs(res["completion_ms"] - expected) <= 1
        st = await statuses(client, u, sid)
        assert [st[s] for s in seats[:3]] == ["sold", "sold", "available"]
        # The hold is consumed.
        assert_problem(
            await client.delete(f"/api/ticketing/holds/{hold_id}", headers=u.auth()), 404
        )
        # Ranking and the outbox event, in the shared encoding.
        assert redis_sync.zrange(keys.ranking(sid), 0, -1, withscores=True) == [
            (res["reservation_id"], 1.0)
        ]
        events = _events(redis_sync, sid)
        assert len(events) == 1
        event = parse_event(events[0])
        assert isinstance(event, ReservationCompleted)
        assert to_fields(event) == events[0]
        assert event.reservation_id == res["reservation_id"]
        assert event.nickname == "alice"
        assert event.seat_ids == seats[:2]
        assert event.rank == 1
        assert event.completion_ms == res["completion_ms"]
        assert event.queue_position == u.queue_position
        assert redis_sync.sismember(keys.EVENT_STREAMS, str(sid))

    async def test_ranks_follow_confirmation_order(self, client, session: CatalogSession):
        sid, seats = session.session_id, session.seat_ids
        users = [User.new() for _ in range(3)]
        holds = [
            (await hold(client, u, sid, [seats[i]])).json()["hold_id"] for i, u in enumerate(users)
        ]
        ranks = []
        for u, h in reversed(list(zip(users, holds, strict=True))):
            ranks.append((await reserve(client, u, sid, h)).json()["rank"])
        assert ranks == [1, 2, 3]

    async def test_expired_hold_is_409_and_changes_nothing(
        self, make_client, session: CatalogSession, redis_sync
    ):
        client = await make_client(hold_ttl_s=1)
        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        await asyncio.sleep(1.1)
        assert_problem(await reserve(client, u, sid, hold_id), 409)
        assert _events(redis_sync, sid) == []
        assert redis_sync.get(keys.rank_seq(sid)) is None
        assert (await statuses(client, u, sid))[session.seat_ids[0]] == "available"

    async def test_someone_elses_hold_is_404(self, client, session: CatalogSession, redis_sync):
        u, thief = User.new(), User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        assert_problem(await reserve(client, thief, sid, hold_id), 404)
        assert _events(redis_sync, sid) == []
        assert (await reserve(client, u, sid, hold_id)).status_code == 201

    @pytest.mark.parametrize(
        "hold_id", ["", "x", "h_{sid}_abc", "r_{sid}_" + "0" * 32, "h_{sid}_" + "0" * 32]
    )
    async def test_bad_or_unknown_hold_ids(self, client, session: CatalogSession, hold_id):
        u = User.new()
        r = await reserve(client, u, session.session_id, hold_id.format(sid=session.session_id))
        assert r.status_code in (404, 422)
        assert r.headers["content-type"].startswith("application/problem+json")


class TestIdempotency:
    async def test_replay_returns_the_same_reservation(
        self, client, session: CatalogSession, redis_sync
    ):
        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:2])).json()["hold_id"]
        first = await reserve(client, u, sid, hold_id, key="k-1")
        again = await reserve(client, u, sid, hold_id, key="k-1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert len(_events(redis_sync, sid)) == 1
        assert redis_sync.get(keys.rank_seq(sid)) == "1"

    async def test_concurrent_replays_make_one_reservation(
        self, client, session: CatalogSession, redis_sync
    ):
        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        rs = await asyncio.gather(
            *(reserve(client, u, sid, hold_id, key="same") for _ in range(10))
        )
        assert {r.status_code for r in rs} == {201}, [r.text for r in rs]
        assert len({r.json()["reservation_id"] for r in rs}) == 1
        assert len(_events(redis_sync, sid)) == 1

    async def test_same_key_other_body_is_422(self, client, session: CatalogSession, clean_db):
        u = User.new()
        sid, seats = session.session_id, session.seat_ids
        h1 = (await hold(client, u, sid, seats[:1])).json()["hold_id"]
        h2 = (await hold(client, u, sid, seats[1:2])).json()["hold_id"]
        assert (await reserve(client, u, sid, h1, key="k")).status_code == 201
        assert_problem(await reserve(client, u, sid, h2, key="k"), 422)
        # Also across sessions (another hash tag).
        other = create_session(clean_db, seats=2)
        h3 = (await hold(client, u, other.session_id, other.seat_ids[:1])).json()["hold_id"]
        assert_problem(await reserve(client, u, other.session_id, h3, key="k"), 422)
        # Another user's identical key is theirs alone.
        v = User.new()
        h4 = (await hold(client, v, sid, seats[2:3])).json()["hold_id"]
        assert (await reserve(client, v, sid, h4, key="k")).status_code == 201

    @pytest.mark.parametrize("key", [None, "", "x" * 65, "bad key"])
    async def test_missing_or_bad_key_is_422(self, client, session: CatalogSession, key):
        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        headers = u.headers(sid)
        if key is not None:
            headers["Idempotency-Key"] = key
        r = await client.post(
            "/api/ticketing/reservations", headers=headers, json={"hold_id": hold_id}
        )
        body = assert_problem(r, 422)
        assert any("Idempotency-Key" in str(e["loc"]) for e in body["errors"])

    async def test_key_of_64_chars_is_fine(self, client, session: CatalogSession):
        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        assert (await reserve(client, u, sid, hold_id, key="k" * 64)).status_code == 201


class TestReadAndList:
    async def test_owner_reads_others_get_404(self, client, session: CatalogSession):
        u, other = User.new(), User.new()
        res = await book(client, u, session.session_id, session.seat_ids[:1])
        rid = res["reservation_id"]
        r = await client.get(f"/api/ticketing/reservations/{rid}", headers=u.auth())
        assert r.status_code == 200
        assert r.json() == res
        assert_problem(
            await client.get(f"/api/ticketing/reservations/{rid}", headers=other.auth()), 404
        )

    @pytest.mark.parametrize(
        "rid",
        ["x", "r_1_zz", "h_1_" + "0" * 32, "r_1_" + "0" * 32, "r_" + "9" * 40 + "_" + "0" * 32],
    )
    async def test_garbage_reservation_ids_are_404(self, client, session, rid):
        u = User.new()
        assert_problem(
            await client.get(f"/api/ticketing/reservations/{rid}", headers=u.auth()), 404
        )
        assert_problem(
            await client.delete(f"/api/ticketing/reservations/{rid}", headers=u.auth()), 404
        )

    async def test_me_lists_across_sessions_newest_first(self, client, session, clean_db):
        u, other = User.new(), User.new()
        second = create_session(clean_db, seats=3)
        a = await book(client, u, session.session_id, session.seat_ids[:1])
        await book(client, other, session.session_id, session.seat_ids[1:2])
        b = await book(client, u, second.session_id, second.seat_ids[:2])
        r = await client.get("/api/ticketing/me/reservations", headers=u.auth())
        assert r.status_code == 200
        assert [x["reservation_id"] for x in r.json()["items"]] == [
            b["reservation_id"],
            a["reservation_id"],
        ]
        r = await client.get("/api/ticketing/me/reservations", headers=User.new().auth())
        assert r.json() == {"items": []}


class TestCancel:
    async def test_cancel_is_the_mirror_of_confirm(
        self, client, session: CatalogSession, redis_sync
    ):
        sid, seats = session.session_id, session.seat_ids
        users = [User.new() for _ in range(3)]
        res = [await book(client, u, sid, [seats[i]]) for i, u in enumerate(users)]
        rid = res[1]["reservation_id"]
        r = await client.delete(f"/api/ticketing/reservations/{rid}", headers=users[1].auth())
        assert r.status_code == 204
        got = (
            await client.get(f"/api/ticketing/reservations/{rid}", headers=users[1].auth())
        ).json()
        assert got["status"] == "cancelled"
        assert got["rank"] == 2
        assert (await statuses(client, users[0], sid))[seats[1]] == "available"
        # The others keep their ranks; the cancelled one left the ranking.
        assert redis_sync.zrange(keys.ranking(sid), 0, -1, withscores=True) == [
            (res[0]["reservation_id"], 1.0),
            (res[2]["reservation_id"], 3.0),
        ]
        events = _events(redis_sync, sid)
        assert len(events) == 4
        cancelled = parse_event(events[-1])
        assert isinstance(cancelled, ReservationCancelled)
        assert to_fields(cancelled) == events[-1]
        assert cancelled.reservation_id == rid
        assert cancelled.seat_ids == [seats[1]]
        # Cancelling again: no second event; a new booking gets the next rank, not 2.
        r = await client.delete(f"/api/ticketing/reservations/{rid}", headers=users[1].auth())
        assert r.status_code == 204
        assert len(_events(redis_sync, sid)) == 4
        assert (await book(client, User.new(), sid, [seats[1]]))["rank"] == 4

    async def test_cancel_frees_the_users_limit(self, client, session: CatalogSession):
        u = User.new()
        sid, seats = session.session_id, session.seat_ids
        res = await book(client, u, sid, seats[:4])
        assert_problem(await hold(client, u, sid, [seats[4]]), 422)
        rid = res["reservation_id"]
        assert (
            await client.delete(f"/api/ticketing/reservations/{rid}", headers=u.auth())
        ).status_code == 204
        assert (await hold(client, u, sid, seats[4:8])).status_code == 201

    async def test_only_the_owner_cancels(self, client, session: CatalogSession, redis_sync):
        u, other = User.new(), User.new()
        rid = (await book(client, u, session.session_id, session.seat_ids[:1]))["reservation_id"]
        r = await client.delete(f"/api/ticketing/reservations/{rid}", headers=other.auth())
        assert_problem(r, 404)
        assert len(_events(redis_sync, session.session_id)) == 1


class TestSoldOut:
    async def test_flag_set_on_last_seat_and_cleared_on_cancel(self, client, clean_db, redis_sync):
        s = create_session(clean_db, seats=3)
        sid = s.session_id
        a, b = User.new(), User.new()
        await book(client, a, sid, s.seat_ids[:2])
        assert not redis_sync.exists(keys.sold_out_flag(sid))
        last = await book(client, b, sid, s.seat_ids[2:])
        assert redis_sync.exists(keys.sold_out_flag(sid))
        rid = last["reservation_id"]
        assert (
            await client.delete(f"/api/ticketing/reservations/{rid}", headers=b.auth())
        ).status_code == 204
        assert not redis_sync.exists(keys.sold_out_flag(sid))
