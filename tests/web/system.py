"""Helpers of the browser tests: the catalog made through the admin API, and API-only users
(the other people of a scenario) who join, hold and confirm with plain HTTP."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from boxoffice.simulate.system import Target

_names = itertools.count(1)


@dataclass
class Catalog:
    """Makes venues, performances and sessions through the gateway's admin routes."""

    target: Target
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.target.gateway_urls[0], timeout=10.0)

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return self.target.gateway_urls[0]

    def _admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(path, json=body, headers={"X-Admin-Token": self.target.admin_token})
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    def session(
        self,
        *,
        title: str | None = None,
        rows: tuple[str, ...] = ("A", "B"),
        seats_per_row: int = 5,
        max_active: int = 50,
        admit_per_second: float = 50.0,
        opens_in_s: float = -1.0,
    ) -> dict[str, Any]:
        """A new performance with one session; returns the session plus ``seats`` (the
        venue's seats with labels) and ``title``."""
        n = next(_names)
        title = title or f"Browser Test Show {n} {time.monotonic_ns() % 100000}"
        half = max(1, len(rows) // 2)
        venue = self._admin(
            "/api/admin/venues",
            {
                "name": f"Test Hall {n}",
                "address": "1 Test Street",
                "sections": [
                    {"grade": "VIP", "price": 150000, "rows": list(rows[:half]),
                     "seats_per_row": seats_per_row},
                    {"grade": "R", "price": 90000, "rows": list(rows[half:]) or list(rows),
                     "seats_per_row": seats_per_row},
                ][: 2 if rows[half:] else 1],
            },
        )  # fmt: skip
        perf = self._admin(
            "/api/admin/performances",
            {"title": title, "description": "Made by the browser tests.", "venue_id": venue["id"]},
        )
        now = datetime.now(UTC)
        session = self._admin(
            f"/api/admin/performances/{perf['id']}/sessions",
            {
                "starts_at": (now + timedelta(days=3)).isoformat(),
                "booking_opens_at": (now + timedelta(seconds=opens_in_s)).isoformat(),
                "queue": {"max_active": max_active, "admit_per_second": admit_per_second},
            },
        )
        return {**session, "seats": venue["seats"], "title": title, "performance_id": perf["id"]}

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


class ApiUser:
    """A guest who books through the API (the other people of a scenario)."""

    def __init__(self, base_url: str, nickname: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10.0)
        r = self.client.post("/api/auth/guest", json={"nickname": nickname})
        assert r.status_code == 201, r.text
        self.client.headers["Authorization"] = "Bearer " + r.json()["access_token"]
        self.admission: str | None = None

    def join_until_admitted(self, session_id: int, timeout_s: float = 15.0) -> None:
        """Join the queue and poll until admitted."""
        r = self.client.post(f"/api/queue/{session_id}/join")
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + timeout_s
        status = r.json()
        while status["status"] != "admitted":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
            status = self.client.get(f"/api/queue/{session_id}").json()
        self.admission = status["admission_token"]

    def hold(self, session_id: int, seat_ids: list[int]) -> dict[str, Any]:
        """Hold seats (201 expected)."""
        assert self.admission
        r = self.client.post(
            f"/api/ticketing/sessions/{session_id}/holds",
            json={"seat_ids": seat_ids},
            headers={"X-Admission-Token": self.admission},
        )
        assert r.status_code == 201, r.text
        hold: dict[str, Any] = r.json()
        return hold

    def confirm(self, hold_id: str) -> dict[str, Any]:
        """Confirm a hold (201 expected)."""
        assert self.admission
        r = self.client.post(
            "/api/ticketing/reservations",
            json={"hold_id": hold_id},
            headers={"X-Admission-Token": self.admission, "Idempotency-Key": hold_id},
        )
        assert r.status_code == 201, r.text
        reservation: dict[str, Any] = r.json()
        return reservation

    def leave(self, session_id: int) -> None:
        """Leave the queue (frees an admitted slot)."""
        assert self.client.delete(f"/api/queue/{session_id}").status_code == 204

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
