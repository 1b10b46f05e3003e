"""Rankings and statistics, from rows as the worker writes them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.api_server.conftest import add_catalog, add_reservation

pytestmark = pytest.mark.integration


class TestRankings:
    async def test_rank_ascending_with_limit_and_gaps_after_cancellation(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        venue, _, (session, other) = add_catalog(db, session_offsets_h=(24, 48))
        seats = venue.seats
        # Inserted out of order; rank 2 is cancelled and leaves the ranking.
        add_reservation(db, session, seats[4:5], rank=3, completion_ms=900, queue_position=7)
        add_reservation(db, session, seats[0:2], rank=1, completion_ms=350, queue_position=1)
        add_reservation(db, session, seats[2:4], rank=2, completion_ms=500, cancelled=True)
        add_reservation(db, session, seats[5:6], rank=4, completion_ms=1200)
        add_reservation(db, other, seats[0:1], rank=1, completion_ms=1)

        resp = await api.get(f"/api/sessions/{session.id}/rankings")

        assert resp.status_code == 200
        body = resp.json()
        assert body["session_id"] == session.id
        assert body["items"] == [
            {
                "rank": 1,
                "user_id": "user-1",
                "nickname": "nick 1",
                "completion_ms": 350,
                "seat_count": 2,
                "queue_position": 1,
            },
            {
                "rank": 3,
                "user_id": "user-3",
                "nickname": "nick 3",
                "completion_ms": 900,
                "seat_count": 1,
                "queue_position": 7,
            },
            {
                "rank": 4,
                "user_id": "user-4",
                "nickname": "nick 4",
                "completion_ms": 1200,
                "seat_count": 1,
                "queue_position": None,
            },
        ]
        top = (await api.get(f"/api/sessions/{session.id}/rankings", params={"limit": 2})).json()
        assert [e["rank"] for e in top["items"]] == [1, 3]

    async def test_empty_for_a_session_without_sales(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        _, _, (session,) = add_catalog(db)
        body = (await api.get(f"/api/sessions/{session.id}/rankings")).json()
        assert body == {"session_id": session.id, "items": []}

    @pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "1.5", "9" * 30])
    async def test_bad_limit_is_422(self, api: httpx.AsyncClient, db: Session, limit: str) -> None:
        _, _, (session,) = add_catalog(db)
        resp = await api.get(f"/api/sessions/{session.id}/rankings", params={"limit": limit})
        assert resp.status_code == 422
        assert resp.json()["errors"][0]["loc"] == ["query", "limit"]


class TestStats:
    async def test_counts_and_median_ignore_cancellations(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        venue, _, (session, other) = add_catalog(db, session_offsets_h=(24, 48))
        seats = venue.seats
        add_reservation(db, session, seats[0:2], rank=1, completion_ms=400)
        add_reservation(db, session, seats[2:3], rank=2, completion_ms=100_000, cancelled=True)
        add_reservation(db, session, seats[3:4], rank=3, completion_ms=100)
        add_reservation(db, session, seats[4:7], rank=4, completion_ms=1000)
        add_reservation(db, other, seats[0:1], rank=1, completion_ms=5)

        body = (await api.get(f"/api/stats/sessions/{session.id}")).json()

        assert body == {
            "session_id": session.id,
            "seat_count": 10,
            "sold_count": 6,
            "available_count": 4,
            "reservation_count": 3,
            "median_completion_ms": 400,  # of 100, 400, 1000; not the cancelled 100 000
        }

    async def test_even_count_median_is_the_mean_of_the_middle_two(
        self, api: httpx.AsyncClient, db: Session
    ) -> None:
        venue, _, (session,) = add_catalog(db)
        for rank, ms in enumerate([900, 100, 300, 7000], start=1):
            add_reservation(db, session, venue.seats[rank : rank + 1], rank=rank, completion_ms=ms)
        body = (await api.get(f"/api/stats/sessions/{session.id}")).json()
        assert body["median_completion_ms"] == 600  # (300 + 900) / 2
        assert body["reservation_count"] == 4

    async def test_no_sales_means_no_median(self, api: httpx.AsyncClient, db: Session) -> None:
        venue, _, (session,) = add_catalog(db)
        add_reservation(db, session, venue.seats[:1], rank=1, completion_ms=5, cancelled=True)
        body = (await api.get(f"/api/stats/sessions/{session.id}")).json()
        assert body == {
            "session_id": session.id,
            "seat_count": 10,
            "sold_count": 0,
            "available_count": 10,
            "reservation_count": 0,
            "median_completion_ms": None,
        }
        assert (await api.get(f"/api/sessions/{session.id}")).json()["sold_count"] == 0
