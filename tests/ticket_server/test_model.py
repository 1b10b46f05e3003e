"""Property test: random sequences of hold / release / expire / reserve / cancel against a
plain Python model of the seat map; after every step Redis (through the API) must agree.

"expire" moves a hold's expiry into the past in Redis (its seats' stamps, the hold record
and the user's hold index: exactly the values the passage of time would make stale),
because sleeping through real TTLs would make each example take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import keys
from tests.ticket_server.conftest import User, create_session
from tests.ticket_server.helpers import hold, reserve, statuses

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEATS = 6
LIMIT = 3
USERS = 2

op = st.one_of(
    st.tuples(
        st.just("hold"),
        st.integers(0, USERS - 1),
        st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=3, unique=True),
    ),
    st.tuples(st.just("release"), st.integers(0, USERS - 1), st.integers(0, 7)),
    st.tuples(st.just("expire"), st.integers(0, 7)),
    st.tuples(st.just("reserve"), st.integers(0, USERS - 1), st.integers(0, 7)),
    st.tuples(st.just("cancel"), st.integers(0, USERS - 1), st.integers(0, 7)),
)


@dataclass
class Hold:
    hold_id: str
    user: int
    user_id: str
    seats: list[int]
    expired: bool = False
    gone: bool = False  # released or confirmed


@dataclass
class Res:
    reservation_id: str
    user: int
    seats: list[int]
    rank: int
    cancelled: bool = False


@dataclass
class Model:
    holds: list[Hold] = field(default_factory=list)
    reservations: list[Res] = field(default_factory=list)

    def state(self, seat: int) -> str:
        if any(seat in r.seats and not r.cancelled for r in self.reservations):
            return "sold"
        if any(seat in h.seats and not h.expired and not h.gone for h in self.holds):
            return "held"
        return "available"

    def in_use(self, user: int) -> int:
        live = sum(len(h.seats) for h in self.holds if h.user == user and not (h.expired or h.gone))
        sold = sum(len(r.seats) for r in self.reservations if r.user == user and not r.cancelled)
        return live + sold


def _expire(r: Any, session_id: int, h: Hold) -> None:
    past = 1  # epoch ms 1: long ago
    key = keys.hold(session_id, h.hold_id)
    if r.exists(key):
        r.hset(key, "expires_ms", past)
    for seat in h.seats:
        state = r.hget(keys.seats(session_id), str(seat))
        if state and state.startswith(f"H:{h.hold_id}:"):
            r.hset(keys.seats(session_id), str(seat), f"H:{h.hold_id}:{past}")
    for member in r.zrange(keys.user_holds(session_id, h.user_id), 0, -1):
        if member.startswith(f"{h.hold_id}:"):
            r.zadd(keys.user_holds(session_id, h.user_id), {member: past})


@pytest.fixture
async def model_client(make_client):
    """One app for every example of the test (each example uses a new session)."""
    return await make_client(max_seats_per_user=LIMIT)


@settings(
    max_examples=30,
    deadline=None,
    database=None,  # no example files written into the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, min_size=1, max_size=14))
async def test_redis_agrees_with_the_model(model_client, clean_db, redis_sync, ops):
    client = model_client
    s = create_session(clean_db, seats=SEATS)
    sid = s.session_id
    users = [User.new(f"u{i}") for i in range(USERS)]
    m = Model()
    next_rank = 1
    for step in ops:
        kind = step[0]
        if kind == "hold":
            _, ui, idx = step
            seats = [s.seat_ids[i] for i in idx]
            r = await hold(client, users[ui], sid, seats)
            if m.in_use(ui) + len(seats) > LIMIT:
                assert r.status_code == 422, r.text
            elif any(m.state(x) != "available" for x in seats):
                assert r.status_code == 409, r.text
                expected = [x for x in seats if m.state(x) != "available"]
                assert r.json()["conflicting_seat_ids"] == expected
            else:
                assert r.status_code == 201, r.text
                m.holds.append(Hold(r.json()["hold_id"], ui, users[ui].user_id, seats))
        elif kind in ("release", "reserve"):
            _, ui, hi = step
            if not m.holds:
                continue
            h = m.holds[hi % len(m.holds)]
            if kind == "release":
                r = await client.delete(
                    f"/api/ticketing/holds/{h.hold_id}", headers=users[ui].auth()
                )
                if h.user == ui and not h.gone:
                    assert r.status_code == 204, r.text
                    h.gone = True
                else:
                    assert r.status_code == 404, r.text
            else:
                r = await reserve(client, users[ui], sid, h.hold_id)
                if h.user != ui or h.gone:
                    assert r.status_code == 404, r.text
                elif h.expired:
                    assert r.status_code == 409, r.text
                else:
                    assert r.status_code == 201, r.text
                    body = r.json()
                    assert body["rank"] == next_rank
                    next_rank += 1
                    h.gone = True
                    m.reservations.append(Res(body["reservation_id"], ui, h.seats, body["rank"]))
        elif kind == "expire":
            _, hi = step
            if not m.holds:
                continue
            h = m.holds[hi % len(m.holds)]
            _expire(redis_sync, sid, h)
            h.expired = True
        else:
            _, ui, ri = step
            if not m.reservations:
                continue
            res = m.reservations[ri % len(m.reservations)]
            r = await client.delete(
                f"/api/ticketing/reservations/{res.reservation_id}", headers=users[ui].auth()
            )
            if res.user == ui:
                assert r.status_code == 204, r.text
                res.cancelled = True
            else:
                assert r.status_code == 404, r.text
        seen = await statuses(client, users[0], sid)
        assert seen == {x: m.state(x) for x in s.seat_ids}, (step, m)

    live = {r.reservation_id: float(r.rank) for r in m.reservations if not r.cancelled}
    assert dict(redis_sync.zrange(keys.ranking(sid), 0, -1, withscores=True)) == live
    events = redis_sync.xrange(keys.events_stream(sid))
    assert len(events) == len(m.reservations) + sum(r.cancelled for r in m.reservations)
    assert bool(redis_sync.exists(keys.sold_out_flag(sid))) == all(
        m.state(x) == "sold" for x in s.seat_ids
    )
