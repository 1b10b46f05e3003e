"""Admin API: creation, the admin token, and every kind of bad body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import PerformanceSession, Seat, Venue
from tests.api_server.conftest import ADMIN, add_catalog, assert_problem

pytestmark = pytest.mark.integration

VENUE: dict[str, Any] = {
    "name": "Olympic Hall",
    "address": "424 Olympic-ro",
    "sections": [
        {"grade": "VIP", "price": 150000, "rows": ["A", "B"], "seats_per_row": 20},
        {"grade": "R", "price": "99.5", "rows": ["C"], "seats_per_row": 3},
    ],
}
SESSION: dict[str, Any] = {
    "starts_at": "2031-05-01T20:00:00Z",
    "booking_opens_at": "2031-04-01T10:00:00+09:00",
}


def _count(db: Session, model: type[Any]) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


class TestCreateVenue:
    async def test_creates_seats_labelled_by_row_and_number(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        resp = await api.post("/api/admin/venues", json=VENUE, headers=ADMIN)

        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["name"] == "Olympic Hall"
        assert body["seat_count"] == 43
        labels = [s["label"] for s in body["seats"]]
        assert labels[:2] == ["A-1", "A-2"]
        assert labels[19:21] == ["A-20", "B-1"]
        assert labels[-3:] == ["C-1", "C-2", "C-3"]
        assert body["seats"][0]["grade"] == "VIP"
        assert body["seats"][0]["price"] == 150000
        assert body["seats"][-1]["price"] == 99.5
        stored = db.scalars(select(Seat.id).where(Seat.venue_id == body["id"])).all()
        assert sorted(stored) == sorted(s["seat_id"] for s in body["seats"])
        venue = (await api.get(f"/api/venues/{body['id']}")).json()
        assert venue["seat_count"] == 43

    async def test_same_row_in_two_sections_is_422_and_writes_nothing(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        sections = [
            {"grade": "VIP", "price": 1, "rows": ["A"], "seats_per_row": 2},
            {"grade": "R", "price": 1, "rows": ["A"], "seats_per_row": 2},
        ]
        resp = await api.post(
            "/api/admin/venues", json={**VENUE, "sections": sections}, headers=ADMIN
        )
        body = assert_problem(resp, 422)
        assert body["errors"][0]["loc"] == ["body", "sections", 1, "rows"]
        assert _count(db, Venue) == 0

    async def test_too_many_seats_is_422(self, api: httpx.AsyncClient, db: Session) -> None:
        rows = [f"R{i}" for i in range(200)]
        sections = [{"grade": "S", "price": 1, "rows": rows, "seats_per_row": 500}] * 2
        resp = await api.post(
            "/api/admin/venues", json={**VENUE, "sections": sections}, headers=ADMIN
        )
        assert_problem(resp, 422)
        assert _count(db, Seat) == 0


class TestCreatePerformanceAndSession:
    async def test_performance_then_session_with_default_queue(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        venue = (await api.post("/api/admin/venues", json=VENUE, headers=ADMIN)).json()
        perf_body = {"title": "Aurora", "description": "d", "venue_id": venue["id"]}
        resp = await api.post("/api/admin/performances", json=perf_body, headers=ADMIN)
        assert resp.status_code == 201, resp.text
        perf = resp.json()
        assert perf == {"id": perf["id"], **perf_body}

        resp = await api.post(
            f"/api/admin/performances/{perf['id']}/sessions", json=SESSION, headers=ADMIN
        )

        assert resp.status_code == 201, resp.text
        session = resp.json()
        assert session["performance_id"] == perf["id"]
        # Normalised to UTC, the offset of the request notwithstanding.
        assert session["booking_opens_at"] == "2031-04-01T01:00:00Z"
        assert session["starts_at"] == "2031-05-01T20:00:00Z"
        assert session["queue"] == {  # settings; no pre-queue
            "max_active": 77,
            "admit_per_second": 3.5,
            "pre_queue_opens_at": None,
            "shuffle_at_open": False,
        }
        assert session["seat_count"] == 43
        assert session["sold_count"] == 0
        assert session["grades"] == [
            {"grade": "VIP", "price": 150000, "seat_count": 40},
            {"grade": "R", "price": 99.5, "seat_count": 3},
        ]
        assert (await api.get(f"/api/sessions/{session['id']}")).json() == session
        stored = db.get(PerformanceSession, session["id"])
        assert stored is not None
        assert stored.booking_opens_at == datetime(2031, 4, 1, 1, tzinfo=UTC)

    async def test_explicit_queue_policy(self, api: httpx.AsyncClient, db: Session) -> None:
        _, perf, _ = add_catalog(db)
        body = {**SESSION, "queue": {"max_active": 1, "admit_per_second": 0.5}}
        resp = await api.post(
            f"/api/admin/performances/{perf.id}/sessions", json=body, headers=ADMIN
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["queue"] == {
            "max_active": 1,
            "admit_per_second": 0.5,
            "pre_queue_opens_at": None,
            "shuffle_at_open": False,
        }

    @pytest.mark.parametrize(
        ("extra", "shuffle"), [({}, True), ({"shuffle_at_open": False}, False)]
    )
    async def test_a_pre_queue_is_stored_and_shuffled_by_default(
        self, api: httpx.AsyncClient, db: Session, extra: dict[str, Any], shuffle: bool
    ) -> None:
        _, perf, _ = add_catalog(db)
        queue = {
            "max_active": 5,
            "admit_per_second": 2,
            "pre_queue_opens_at": "2031-04-01T00:30:00Z",
        }
        body = {**SESSION, "queue": {**queue, **extra}}
        resp = await api.post(
            f"/api/admin/performances/{perf.id}/sessions", json=body, headers=ADMIN
        )
        assert resp.status_code == 201, resp.text
        got = resp.json()["queue"]
        assert (got["pre_queue_opens_at"], got["shuffle_at_open"]) == (
            "2031-04-01T00:30:00Z",
            shuffle,
        )
        again = await api.get(f"/api/sessions/{resp.json()['id']}")
        assert again.json()["queue"] == got

    async def test_a_pre_queue_opening_after_booking_is_422(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        _, perf, _ = add_catalog(db)
        queue = {
            "max_active": 5,
            "admit_per_second": 2,
            "pre_queue_opens_at": "2031-04-01T01:00:00Z",
        }
        resp = await api.post(
            f"/api/admin/performances/{perf.id}/sessions",
            json={**SESSION, "queue": queue},  # booking opens 2031-04-01T01:00:00Z too
            headers=ADMIN,
        )
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")

    async def test_booking_may_open_when_the_session_starts(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        _, perf, _ = add_catalog(db)
        at = "2031-05-01T20:00:00Z"
        body = {"starts_at": at, "booking_opens_at": at}
        resp = await api.post(
            f"/api/admin/performances/{perf.id}/sessions", json=body, headers=ADMIN
        )
        assert resp.status_code == 201

    async def test_unknown_venue_is_404(self, api: httpx.AsyncClient) -> None:
        body = {"title": "T", "venue_id": 123456}
        assert_problem(await api.post("/api/admin/performances", json=body, headers=ADMIN), 404)

    async def test_unknown_performance_is_404(self, api: httpx.AsyncClient) -> None:
        resp = await api.post(
            "/api/admin/performances/987654/sessions", json=SESSION, headers=ADMIN
        )
        assert_problem(resp, 404)


def _arranged(db: Session) -> dict[str, int]:
    _, perf, _ = add_catalog(db)
    return {"venue_id": perf.venue_id, "performance_id": perf.id}


class TestAdminToken:
    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/api/admin/venues", VENUE),
            ("/api/admin/performances", {"title": "T", "venue_id": 1}),
            ("/api/admin/performances/1/sessions", SESSION),
        ],
    )
    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            ({}, 401),
            ({"X-Admin-Token": ""}, 401),
            ({"X-Admin-Token": "wrong"}, 403),
            ({"X-Admin-Token": ADMIN["X-Admin-Token"] + "x"}, 403),
            ({"X-Admin-Token": "t\u00e9st".encode("latin-1")}, 403),
            ({"Authorization": "Bearer " + ADMIN["X-Admin-Token"]}, 401),
        ],
    )
    async def test_refused_and_nothing_written(
        self,
        api: httpx.AsyncClient,
        db: Session,
        path: str,
        body: dict[str, Any],
        headers: dict[str, Any],
        status: int,
    ) -> None:
        resp = await api.post(path, json=body, headers=headers)
        problem = assert_problem(resp, status)
        assert (
            "admin token" in problem["detail"].lower()
            or "x-admin-token" in problem["detail"].lower()
        )
        if status == 401:
            assert "www-authenticate" in resp.headers
        assert _count(db, Venue) == 0

    async def test_token_checked_before_the_body_fields(self, api: httpx.AsyncClient) -> None:
        # Without the token, a caller learns nothing about what a valid body looks like.
        resp = await api.post("/api/admin/venues", json={"bogus": 1})
        assert_problem(resp, 401)


LONG = "x" * 201


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # wrong types
        ("/api/admin/venues", {**VENUE, "name": 5}),
        ("/api/admin/venues", {**VENUE, "sections": "A"}),
        (
            "/api/admin/venues",
            {**VENUE, "sections": [{**VENUE["sections"][0], "seats_per_row": "x"}]},
        ),
        ("/api/admin/venues", {**VENUE, "sections": [{**VENUE["sections"][0], "price": "cheap"}]}),
        ("/api/admin/venues", []),
        ("/api/admin/venues", None),
        # out of range / empty
        ("/api/admin/venues", {**VENUE, "sections": []}),
        (
            "/api/admin/venues",
            {**VENUE, "sections": [{**VENUE["sections"][0], "seats_per_row": 0}]},
        ),
        ("/api/admin/venues", {**VENUE, "sections": [{**VENUE["sections"][0], "price": -1}]}),
        ("/api/admin/venues", {**VENUE, "sections": [{**VENUE["sections"][0], "price": "1.001"}]}),
        ("/api/admin/venues", {**VENUE, "sections": [{**VENUE["sections"][0], "rows": ["A-1"]}]}),
        (
            "/api/admin/venues",
            {**VENUE, "sections": [{**VENUE["sections"][0], "rows": ["A", "A"]}]},
        ),
        ("/api/admin/venues", {**VENUE, "name": ""}),
        # oversized strings
        ("/api/admin/venues", {**VENUE, "name": LONG}),
        ("/api/admin/venues", {**VENUE, "address": "y" * 501}),
        ("/api/admin/venues", {**VENUE, "sections": [{**VENUE["sections"][0], "grade": "g" * 33}]}),
        (
            "/api/admin/venues",
            {**VENUE, "sections": [{**VENUE["sections"][0], "rows": ["R" * 17]}]},
        ),
        ("/api/admin/performances", {"title": LONG, "venue_id": 1}),
        ("/api/admin/performances", {"title": "T", "description": "d" * 10_001, "venue_id": 1}),
        # unknown fields
        ("/api/admin/venues", {**VENUE, "capacity": 3}),
        ("/api/admin/performances", {"title": "T", "venue_id": 1, "id": 9}),
        ("/api/admin/performances/{performance_id}/sessions", {**SESSION, "sold_count": 1}),
        # ids
        ("/api/admin/performances", {"title": "T", "venue_id": 0}),
        ("/api/admin/performances", {"title": "T", "venue_id": 2**64}),
        ("/api/admin/performances", {"title": "T", "venue_id": "one"}),
        ("/api/admin/performances", {"title": "T"}),
        # dates
        (
            "/api/admin/performances/{performance_id}/sessions",
            {**SESSION, "starts_at": "2031-05-01T20:00:00"},
        ),
        ("/api/admin/performances/{performance_id}/sessions", {**SESSION, "starts_at": "tomorrow"}),
        ("/api/admin/performances/{performance_id}/sessions", {**SESSION, "starts_at": 17}),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {"starts_at": "2031-01-01T00:00:00Z", "booking_opens_at": "2031-01-01T00:00:01Z"},
        ),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {"starts_at": "9999-12-31T23:00:00-05:00", "booking_opens_at": "2031-01-01T00:00:00Z"},
        ),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {"starts_at": "2031-01-01T00:00:00Z", "booking_opens_at": "0001-01-01T00:00:00+01:00"},
        ),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {**SESSION, "queue": {"max_active": 0, "admit_per_second": 1}},
        ),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {**SESSION, "queue": {"max_active": 1, "admit_per_second": 0}},
        ),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {**SESSION, "queue": {"max_active": 1}},
        ),
        # Below the column's thousandths: stored as 0, refused by the database's CHECK (on
        # MariaDB that was a 503 "database unavailable"; on SQLite a 201).
        (
            "/api/admin/performances/{performance_id}/sessions",
            {**SESSION, "queue": {"max_active": 1, "admit_per_second": 5e-324}},
        ),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {**SESSION, "queue": {"max_active": 1, "admit_per_second": 0.0004}},
        ),
        (
            "/api/admin/performances/{performance_id}/sessions",
            {**SESSION, "queue": {"max_active": 1, "admit_per_second": "fast"}},
        ),
    ],
)
async def test_bad_bodies_are_422(
    api: httpx.AsyncClient, db: Session, path: str, body: Any
) -> None:
    ids = _arranged(db)
    resp = await api.post(path.format(**ids), json=body, headers=ADMIN)
    problem = assert_problem(resp, 422)
    assert problem["errors"], problem
    assert _count(db, PerformanceSession) == 1  # the arranged one only


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"name": "V", ', "application/json"),  # malformed JSON
        (b"\xff\xfe\xfa not utf-8", "application/json"),  # not UTF-8
        (b'{"name": "\xe9t\xe9"}', "application/json"),  # Latin-1, not UTF-8
        (b"", "application/json"),  # empty
        (b"name=V", "application/x-www-form-urlencoded"),  # not JSON at all
        (b'{"name": "V"}', "text/plain"),
    ],
)
async def test_undecodable_bodies_are_422(
    api: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    headers = {**ADMIN, "content-type": content_type}
    assert_problem(await api.post("/api/admin/venues", content=content, headers=headers), 422)


async def test_body_over_one_mib_is_413(api: httpx.AsyncClient, db: Session) -> None:
    big = {**VENUE, "address": "x" * (1024 * 1024)}
    assert_problem(await api.post("/api/admin/venues", json=big, headers=ADMIN), 413)
    assert _count(db, Venue) == 0


async def test_chunked_body_over_one_mib_is_413(api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit must be enforced while reading
        for _ in range(20):
            yield b" " * 100_000

    headers = {**ADMIN, "content-type": "application/json"}
    assert_problem(await api.post("/api/admin/venues", content=chunks(), headers=headers), 413)


async def test_full_length_four_byte_names_round_trip(api: httpx.AsyncClient) -> None:
    name = "\U0001f3ab" * 200  # 200 characters, 800 bytes in utf8mb4
    resp = await api.post("/api/admin/venues", json={**VENUE, "name": name}, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    assert (await api.get(f"/api/venues/{resp.json()['id']}")).json()["name"] == name


async def test_lone_surrogates_are_422(api: httpx.AsyncClient) -> None:
    body = b'{"name": "\\ud800", "address": "a", "sections": []}'
    headers = {**ADMIN, "content-type": "application/json"}
    assert_problem(await api.post("/api/admin/venues", content=body, headers=headers), 422)
