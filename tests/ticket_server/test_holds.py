"""Holds: all or nothing, per-user limit, expiry by server time, release by the owner."""

from __future__ import annotations

import asyncio

import pytest

from shared import keys
from tests.ticket_server.conftest import CatalogSession, User
from tests.ticket_server.helpers import assert_problem, book, hold, statuses

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]


class TestHold:
    async def test_hold_marks_seats_held_until_expiry(self, client, session: CatalogSession):
        u = User.new()
        sid = session.session_id
        r = await hold(client, u, sid, session.seat_ids[:2])
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["session_id"] == sid
        assert body["seat_ids"] == session.seat_ids[:2]
        assert body["hold_id"].startswith(f"h_{sid}_")
        assert body["expires_at"].endswith("Z") or "+00:00" in body["expires_at"]
        st = await statuses(client, u, sid)
        assert [st[s] for s in session.seat_ids[:3]] == ["held", "held", "available"]

    async def test_all_or_nothing_reports_conflicts(self, client, session: CatalogSession):
        a, b = User.new(), User.new()
        sid, seats = session.session_id, session.seat_ids
        assert (await hold(client, a, sid, seats[1:3])).status_code == 201
        r = await hold(client, b, sid, [seats[0], seats[2], seats[3]])
        body = assert_problem(r, 409)
        assert body["conflicting_seat_ids"] == [seats[2]]
        st = await statuses(client, b, sid)
        # Nothing of the refused request was held.
        assert st[seats[0]] == "available"
        assert st[seats[3]] == "available"

    async def test_sold_seat_conflicts(self, client, session: CatalogSession):
        a, b = User.new(), User.new()
        sid, seats = session.session_id, session.seat_ids
        await book(client, a, sid, [seats[0]])
        body = assert_problem(await hold(client, b, sid, [seats[0], seats[1]]), 409)
        assert body["conflicting_seat_ids"] == [seats[0]]

    @pytest.mark.parametrize(
        "seat_ids",
        [[], "x", [1.5], ["a"], None, [2**63], [-1], [0], [10**40]],
        ids=["empty", "string", "float", "str-item", "null", "int64+1", "neg", "zero", "huge"],
    )
    async def test_bad_seat_ids_are_422(self, client, session: CatalogSession, seat_ids):
        u = User.new()
        r = await hold(client, u, session.session_id, seat_ids)
        assert_problem(r, 422)

    async def test_duplicates_are_422(self, client, session: CatalogSession):
        u = User.new()
        s = session.seat_ids[0]
        body = assert_problem(await hold(client, u, session.session_id, [s, s]), 422)
        assert body["duplicate_seat_ids"] == [s]

    async def test_unknown_seats_are_422(self, client, session: CatalogSession, clean_db):
        from tests.ticket_server.conftest import create_session

        other = create_session(clean_db, seats=2)
        u = User.new()
        r = await hold(client, u, session.session_id, [session.seat_ids[0], other.seat_ids[0]])
        body = assert_problem(r, 422)
        assert body["unknown_seat_ids"] == [other.seat_ids[0]]

    async def test_more_than_the_limit_in_one_request_is_422(self, client, session):
        u = User.new()
        r = await hold(client, u, session.session_id, session.seat_ids[:5])
        assert_problem(r, 422)

    async def test_limit_spans_holds_and_reservations(self, client, session: CatalogSession):
        u = User.new()
        sid, seats = session.session_id, session.seat_ids
        await book(client, u, sid, seats[:2])
        assert (await hold(client, u, sid, [seats[2]])).status_code == 201
        body = assert_problem(await hold(client, u, sid, seats[3:5]), 422)
        assert body["in_use"] == 3
        assert (await hold(client, u, sid, [seats[3]])).status_code == 201
        # Another user is not affected by this user's limit.
        assert (await hold(client, User.new(), sid, seats[4:8])).status_code == 201

    async def test_limit_setting_is_honoured(self, make_client, session: CatalogSession):
        client = await make_client(max_seats_per_user=1)
        u = User.new()
        assert_problem(await hold(client, u, session.session_id, session.seat_ids[:2]), 422)

    async def test_unknown_session_is_404(self, client, session: CatalogSession):
        u = User.new()
        assert_problem(await hold(client, u, session.session_id + 1000, [1]), 404)

    async def test_huge_session_id_is_422_not_500(self, client, session: CatalogSession):
        u = User.new()
        r = await client.post(
            f"/api/ticketing/sessions/{10**30}/holds",
            headers=u.auth(),
            json={"seat_ids": [1]},
        )
        assert r.status_code in (403, 422)
        r = await client.post(
            f"/api/ticketing/sessions/{2**63}/holds",
            headers=u.headers(5),
            json={"seat_ids": [1]},
        )
        assert_problem(r, 422)

    async def test_malformed_json_is_422(self, client, session: CatalogSession):
        u = User.new()
        sid = session.session_id
        for raw in (b"{", b"\xff\xfe", b'{"seat_ids": [1], "extra": 1}'):
            r = await client.post(
                f"/api/ticketing/sessions/{sid}/holds",
                headers={**u.headers(sid), "Content-Type": "application/json"},
                content=raw,
            )
            assert_problem(r, 422)


class TestExpiry:
    async def test_expired_hold_frees_seats_without_a_sweeper(self, make_client, session):
        client = await make_client(hold_ttl_s=1)
        a, b = User.new(), User.new()
        sid, seats = session.session_id, session.seat_ids
        r = await hold(client, a, sid, seats[:4])
        assert r.status_code == 201
        assert_problem(await hold(client, b, sid, seats[:1]), 409)
        await asyncio.sleep(1.1)
        st = await statuses(client, b, sid)
        assert st[seats[0]] == "available"
        assert (await hold(client, b, sid, seats[:1])).status_code == 201
        # The expired hold no longer counts against a's limit either.
        assert (await hold(client, a, sid, seats[4:8])).status_code == 201


class TestRelease:
    async def test_owner_releases(self, client, session: CatalogSession):
        u = User.new()
        sid, seats = session.session_id, session.seat_ids
        hold_id = (await hold(client, u, sid, seats[:2])).json()["hold_id"]
        r = await client.delete(f"/api/ticketing/holds/{hold_id}", headers=u.auth())
        assert r.status_code == 204
        assert r.content == b""
        st = await statuses(client, u, sid)
        assert st[seats[0]] == st[seats[1]] == "available"
        # Gone now; and the released seats no longer count against the limit.
        r = await client.delete(f"/api/ticketing/holds/{hold_id}", headers=u.auth())
        assert_problem(r, 404)
        assert (await hold(client, u, sid, seats[:4])).status_code == 201

    async def test_others_get_404_and_the_hold_stays(self, client, session: CatalogSession):
        u, other = User.new(), User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        r = await client.delete(f"/api/ticketing/holds/{hold_id}", headers=other.auth())
        assert_problem(r, 404)
        assert (await statuses(client, u, sid))[session.seat_ids[0]] == "held"

    @pytest.mark.parametrize(
        "hold_id",
        [
            "nope",
            "h_1_xyz",
            "h_0_" + "0" * 32,
            "r_1_" + "0" * 32,
            "h_99999999999999999999999_" + "0" * 32,
            "h_1_" + "0" * 32 + "x" * 500,
            "h_1_%7B" + "0" * 30,
        ],
    )
    async def test_garbage_ids_are_404(self, client, session, hold_id):
        u = User.new()
        r = await client.delete(f"/api/ticketing/holds/{hold_id}", headers=u.auth())
        assert_problem(r, 404)

    async def test_release_needs_auth_only(self, client, session: CatalogSession, redis_sync):
        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        assert redis_sync.exists(keys.hold(sid, hold_id))
        r = await client.delete(f"/api/ticketing/holds/{hold_id}", headers=u.auth())
        assert r.status_code == 204
        assert not redis_sync.exists(keys.hold(sid, hold_id))
