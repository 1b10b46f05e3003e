"""Setting the stage through the admin API: a venue with the requested number of seats, a
performance, and a session whose booking opens a few seconds from now."""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

SEATS_PER_ROW = 25


@dataclass(frozen=True)
class Stage:
    """What the simulation sells."""

    session_id: int
    seat_ids: list[int]
    opens_at: float  # epoch seconds
    max_active: int
    admit_per_second: float
    commitment: str | None = None  # the pre-queue draw's, published before anyone joined


class SetupError(RuntimeError):
    """The admin API refused to create the catalog."""


def row_names(count: int) -> list[str]:
    """``A``..``Z``, ``AA``, ``AB``, … like theatre rows."""
    letters = string.ascii_uppercase
    names = []
    for i in range(count):
        name = ""
        n = i
        while True:
            name = letters[n % 26] + name
            n = n // 26 - 1
            if n < 0:
                break
        names.append(name)
    return names


def sections_for(seats: int) -> list[dict[str, Any]]:
    """Sections totalling exactly ``seats``: front rows VIP, the rest R, a short last row S."""
    full_rows, remainder = divmod(seats, SEATS_PER_ROW)
    names = row_names(full_rows + (1 if remainder else 0))
    sections: list[dict[str, Any]] = []
    vip = max(1, full_rows // 5) if full_rows > 1 else 0
    if vip:
        sections.append(
            {"grade": "VIP", "price": 150000, "rows": names[:vip], "seats_per_row": SEATS_PER_ROW}
        )
    if full_rows - vip > 0:
        sections.append(
            {
                "grade": "R",
                "price": 120000,
                "rows": names[vip:full_rows],
                "seats_per_row": SEATS_PER_ROW,
            }
        )
    if remainder:
        sections.append(
            {"grade": "S", "price": 90000, "rows": [names[-1]], "seats_per_row": remainder}
        )
    return sections


async def create_stage(
    http: httpx.AsyncClient,
    base_url: str,
    *,
    admin_token: str,
    seats: int,
    lead_s: float,
    max_active: int,
    admit_per_second: float,
    label: str,
    before_session: Callable[[], Awaitable[None]] | None = None,
    pre_queue: bool = False,
) -> Stage:
    """Create venue, performance and session; booking opens ``lead_s`` seconds after the
    session is created. ``before_session`` runs just before that (the crowd logs in then,
    so that the burst at opening is joins, not logins)."""
    headers = {"X-Admin-Token": admin_token}

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await http.post(base_url + path, json=body, headers=headers)
        if response.status_code != 201:
            raise SetupError(f"POST {path} -> {response.status_code}: {response.text[:500]}")
        data: dict[str, Any] = response.json()
        return data

    venue = await post(
        "/api/admin/venues",
        {
            "name": f"Sim Arena {label}",
            "address": "1 Simulation Way",
            "sections": sections_for(seats),
        },
    )
    seat_ids = [int(s["seat_id"]) for s in venue["seats"]]
    if len(seat_ids) != seats:
        raise SetupError(f"asked for {seats} seats, the venue has {len(seat_ids)}")
    performance = await post(
        "/api/admin/performances",
        {"title": f"On-sale simulation {label}", "description": "", "venue_id": venue["id"]},
    )
    if before_session is not None:
        await before_session()
    now = datetime.now(UTC)
    opens = now + timedelta(seconds=lead_s)
    session = await post(
        f"/api/admin/performances/{performance['id']}/sessions",
        {
            "starts_at": (now + timedelta(days=7)).isoformat(),
            "booking_opens_at": opens.isoformat(),
            "queue": {
                "max_active": max_active,
                "admit_per_second": admit_per_second,
                # The pre-queue opens at once (its entrants are drawn at opening).
                "pre_queue_opens_at": (now - timedelta(seconds=1)).isoformat()
                if pre_queue
                else None,
            },
        },
    )
    opens_at = datetime.fromisoformat(session["booking_opens_at"]).timestamp()
    commitment = None
    if pre_queue:
        record = await http.get(f"{base_url}/api/queue/{session['id']}/draw")
        if record.status_code != 200:
            raise SetupError(f"GET draw: {record.status_code} {record.text[:200]}")
        commitment = record.json()["commitment"]
    return Stage(
        session_id=int(session["id"]),
        seat_ids=seat_ids,
        opens_at=opens_at,
        max_active=max_active,
        admit_per_second=admit_per_second,
        commitment=commitment,
    )
