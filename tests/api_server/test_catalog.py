"""Public catalog: venues, performances (pagination, search), sessions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from shared.ids import MAX_ID
from tests.api_server.conftest import ADMIN, add_catalog, add_reservation, assert_problem

pytestmark = pytest.mark.integration


def _iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value  # API.md: timestamps in UTC
    return parsed


class TestVenues:
    async def test_list_pages_and_totals(self, api: httpx.AsyncClient, db: Session) -> None:
        venues = [add_catalog(db, title=f"Show {i}")[0] for i in range(3)]

        first = (await api.get("/api/venues", params={"limit": 2})).json()
        second = (await api.get("/api/venues", params={"offset": 2, "limit": 2})).json()

        assert first["total"] == second["total"] == 3
        assert (first["offset"], first["limit"]) == (0, 2)
        assert [v["id"] for v in first["items"] + second["items"]] == [v.id for v in venues]
        assert first["items"][0] == {
            "id": venues[0].id,
            "name": "Hall of Show 0",
            "address": "1 Main St",
            "seat_count": 10,
        }

    async def test_get_one(self, api: httpx.AsyncClient, db: Session) -> None:
        venue, _, _ = add_catalog(db)
        resp = await api.get(f"/api/venues/{venue.id}")
        assert resp.status_code == 200
        assert resp.json()["seat_count"] == 10

    async def test_offset_past_the_end_is_an_empty_page(self, api: httpx.AsyncClient) -> None:
        resp = await api.get("/api/venues", params={"offset": 2**53})
        assert resp.status_code == 200
        assert resp.json()["items"] == []


class TestPerformances:
    async def test_search_is_a_case_insensitive_substring(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        for title in ("Aurora Live in Seoul", "Midnight Jazz", "LIVE at the Hall"):
            add_catalog(db, title=title)
        resp = await api.get("/api/performances", params={"q": "live"})
        body = resp.json()
        assert sorted(p["title"] for p in body["items"]) == [
            "Aurora Live in Seoul",
            "LIVE at the Hall",
        ]
        assert body["total"] == 2

    @pytest.mark.parametrize(
        ("q", "expected"), [("100%", ["100% Live"]), ("a_b", ["a_b"]), ("\\", ["back\\slash"])]
    )
    async def test_like_wildcards_are_literal(
        self, api: httpx.AsyncClient, db: Session, q: str, expected: list[str]
    ) -> None:
        for title in ("100% Live", "1000 Live", "a_b", "axb", "back\\slash"):
            add_catalog(db, title=title)
        body = (await api.get("/api/performances", params={"q": q})).json()
        assert [p["title"] for p in body["items"]] == expected

    async def test_next_session_is_the_earliest_upcoming(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        _, perf, sessions = add_catalog(db, session_offsets_h=(-48, 72, 24))
        _, past_only, _ = add_catalog(db, title="Over", session_offsets_h=(-5,))
        items = {p["id"]: p for p in (await api.get("/api/performances")).json()["items"]}
        assert _iso(items[perf.id]["next_session_at"]) == sessions[2].starts_at
        assert items[perf.id]["venue_id"] == perf.venue_id
        assert items[past_only.id]["next_session_at"] is None

    async def test_detail_has_venue_and_sessions(self, api: httpx.AsyncClient, db: Session) -> None:
        venue, perf, sessions = add_catalog(db, session_offsets_h=(48, 24))
        body = (await api.get(f"/api/performances/{perf.id}")).json()
        assert body["title"] == perf.title
        assert body["description"] == "desc"
        assert body["venue"] == {
            "id": venue.id,
            "name": venue.name,
            "address": venue.address,
            "seat_count": 10,
        }
        # Earliest first.
        assert [s["id"] for s in body["sessions"]] == [sessions[1].id, sessions[0].id]


class TestSessions:
    async def test_session_payload(self, api: httpx.AsyncClient, db: Session) -> None:
        venue, perf, (session, other) = add_catalog(db, session_offsets_h=(24, 48))
        seats = venue.seats
        add_reservation(db, session, seats[:2], rank=1, completion_ms=100)
        add_reservation(db, session, seats[2:3], rank=2, completion_ms=100, cancelled=True)
        add_reservation(db, other, seats[5:6], rank=1, completion_ms=100)

        resp = await api.get(f"/api/sessions/{session.id}")

        assert resp.status_code == 200
        body = resp.json()
        assert body["id"] == session.id
        assert body["performance_id"] == perf.id
        assert _iso(body["starts_at"]) == session.starts_at
        assert _iso(body["booking_opens_at"]) == session.booking_opens_at
        assert body["seat_count"] == 10
        assert body["sold_count"] == 2  # the cancelled one and the other session's do not count
        assert body["grades"] == [
            {"grade": "VIP", "price": 150000, "seat_count": 6},
            {"grade": "R", "price": 90, "seat_count": 4},
        ]
        assert body["queue"] == {
            "max_active": 5,
            "admit_per_second": 2.5,
            "pre_queue_opens_at": None,
            "shuffle_at_open": False,
        }

    async def test_performance_sessions_carry_their_own_sold_counts(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        venue, perf, (first, second) = add_catalog(db, session_offsets_h=(24, 48))
        add_reservation(db, second, venue.seats[:3], rank=1, completion_ms=100)
        sessions = (await api.get(f"/api/performances/{perf.id}")).json()["sessions"]
        assert [(s["id"], s["sold_count"]) for s in sessions] == [(first.id, 0), (second.id, 3)]


@pytest.mark.parametrize(
    "path",
    [
        "/api/venues/{missing}",
        "/api/performances/{missing}",
        "/api/sessions/{missing}",
        "/api/sessions/{missing}/rankings",
        "/api/stats/sessions/{missing}",
    ],
)
async def test_unknown_ids_are_404(api: httpx.AsyncClient, db: Session, path: str) -> None:
    add_catalog(db)  # something exists, just not this id
    assert_problem(await api.get(path.format(missing=2**53)), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/api/venues/{id}",
        "/api/performances/{id}",
        "/api/sessions/{id}",
        "/api/sessions/{id}/rankings",
        "/api/stats/sessions/{id}",
    ],
)
@pytest.mark.parametrize("bad_id", ["abc", "0", "-1", "1.5", str(2**53 + 1), "9" * 30, "1e3"])
async def test_bad_path_ids_are_422(api: httpx.AsyncClient, path: str, bad_id: str) -> None:
    body = assert_problem(await api.get(path.format(id=bad_id)), 422)
    assert body["errors"][0]["loc"][0] == "path"


@pytest.mark.parametrize("path", ["/api/venues", "/api/performances"])
@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"limit": 2**64},
        {"offset": -1},
        {"offset": 2**53 + 1},
        {"offset": "9" * 40},
        {"offset": "1.5"},
    ],
)
async def test_bad_pagination_is_422(
    api: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> None:
    body = assert_problem(await api.get(path, params=params), 422)
    assert body["errors"][0]["loc"] == ["query", next(iter(params))]


@pytest.mark.parametrize("q", ["x" * 201, "a\x00b"])
async def test_oversized_or_nul_search_is_422(api: httpx.AsyncClient, q: str) -> None:
    assert_problem(await api.get("/api/performances", params={"q": q}), 422)


async def test_limit_bounds_are_inclusive(api: httpx.AsyncClient, db: Session) -> None:
    add_catalog(db)
    for limit in (1, 100):
        resp = await api.get("/api/performances", params={"limit": limit})
        assert resp.status_code == 200
        assert resp.json()["limit"] == limit


@pytest.mark.parametrize("q", ["\u00ff", "\U0001f600", "'; DROP TABLE venues; --", "%%", "x" * 200])
async def test_odd_searches_are_answered(api: httpx.AsyncClient, db: Session, q: str) -> None:
    add_catalog(db, title="Plain title")
    resp = await api.get("/api/performances", params={"q": q})
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"] == []


async def test_search_matches_non_ascii_titles(api: httpx.AsyncClient, db: Session) -> None:
    _, perf, _ = add_catalog(db, title="\U0001f600 공연 Live")
    body = (await api.get("/api/performances", params={"q": "공연"})).json()
    assert [p["id"] for p in body["items"]] == [perf.id]


class TestIdBound:
    """The shared id bound (shared/ids.py): the bound is an id that may exist (404 when it
    does not), the next number is out of range (422), in a path and in a body alike."""

    async def test_path_ids(self, api: httpx.AsyncClient, db: Session) -> None:
        add_catalog(db)
        for path in ("/api/venues/{}", "/api/sessions/{}", "/api/stats/sessions/{}"):
            assert_problem(await api.get(path.format(MAX_ID)), 404)
            body = assert_problem(await api.get(path.format(MAX_ID + 1)), 422)
            assert body["errors"][0]["loc"][0] == "path"

    async def test_body_ids(self, api: httpx.AsyncClient) -> None:
        perf = {"title": "Show", "description": ""}
        for venue_id, status in ((MAX_ID, 404), (MAX_ID + 1, 422)):
            r = await api.post(
                "/api/admin/performances", json={**perf, "venue_id": venue_id}, headers=ADMIN
            )
            assert_problem(r, status)
