"""The shared id bound (shared/ids.py) on every way an id reaches ticket_server: the bound
is an id that may exist (404 when nothing has it), the next number is out of range (422);
an id string naming a session past the bound is no id of ours (404), never a 500."""

from __future__ import annotations

import pytest

from shared.ids import MAX_ID
from tests.ticket_server.conftest import CatalogSession, User
from tests.ticket_server.helpers import assert_problem, hold
from ticket_server.ids import hold_session, new_hold_id, reservation_session

pytestmark = pytest.mark.integration

HEX = "0" * 32


@pytest.mark.parametrize(("session_id", "status"), [(MAX_ID, 404), (MAX_ID + 1, 422)])
async def test_seat_map_session_id(client, session_id: int, status: int) -> None:
    u = User.new()
    r = await client.get(
        f"/api/ticketing/sessions/{session_id}/seats", headers=u.headers(session_id)
    )
    assert_problem(r, status)


@pytest.mark.parametrize(("session_id", "status"), [(MAX_ID, 404), (MAX_ID + 1, 422)])
async def test_hold_session_id(client, session_id: int, status: int) -> None:
    assert_problem(await hold(client, User.new(), session_id, [1]), status)


async def test_hold_seat_ids(client, session: CatalogSession) -> None:
    sid = session.session_id
    assert (await hold(client, User.new(), sid, [MAX_ID])).status_code in (404, 422)
    body = assert_problem(await hold(client, User.new(), sid, [MAX_ID + 1]), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "seat_ids", 0]]


@pytest.mark.parametrize("session_id", [MAX_ID, MAX_ID + 1, 10**17])
async def test_hold_and_reservation_ids(client, session_id: int) -> None:
    u = User.new()
    assert_problem(
        await client.delete(f"/api/ticketing/holds/h_{session_id}_{HEX}", headers=u.auth()), 404
    )
    r = await client.get(f"/api/ticketing/reservations/r_{session_id}_{HEX}", headers=u.auth())
    assert_problem(r, 404)


def test_hold_and_reservation_ids_stay_within_the_bound() -> None:
    assert hold_session(new_hold_id(MAX_ID)) == MAX_ID
    assert hold_session(new_hold_id(MAX_ID + 1)) is None
    assert reservation_session(f"r_{MAX_ID + 1}_{'0' * 32}") is None
    assert reservation_session(f"r_{10**17}_{'0' * 32}") is None
