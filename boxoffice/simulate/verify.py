"""After the crowd has gone: what the system says it sold, compared with what the crowd saw.

Three views of the same sale must agree: the clients' confirmed reservations, the live seat
map in Redis (ticket_server), and the read side in MySQL (api_server stats and rankings,
once the worker has drained the stream)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from boxoffice.simulate.catalog import Stage
from boxoffice.simulate.user import Person
from shared.tokens import issue_admission_token


@dataclass
class Verification:
    """The invariants' raw figures."""

    client_reservations: int = 0
    client_sold_seats: int = 0
    oversold_seats: int = 0
    seatmap_sold: int | None = None
    seatmap_held: int | None = None
    sold_seats_not_in_map: int = 0
    seatmap_error: str | None = None
    mysql_reservations: int | None = None
    mysql_sold: int | None = None
    lost: int = 0
    phantom: int = 0
    drained: bool = False
    drain_s: float = 0.0
    ranking_checked: int = 0
    ranking_mismatches: list[str] = field(default_factory=list)
    idempotency_mismatches: int = 0


def live_reservations(people: list[Person]) -> list[Person]:
    """People holding a confirmed, not cancelled reservation."""
    return [p for p in people if p.reservation is not None and not p.cancelled]


def oversold_seats(people: list[Person]) -> int:
    """Seats sold to two people at the same moment.

    A seat sold, cancelled and sold again is fine; a second sale confirmed (server time)
    before the first buyer even asked to cancel is not."""
    by_seat: dict[int, list[tuple[float, float]]] = {}
    for p in people:
        if p.reservation is None:
            continue
        start = _epoch(p.reservation.get("created_at"))
        end = p.cancel_sent if p.cancelled and p.cancel_sent is not None else float("inf")
        for seat in p.reservation["seat_ids"]:
            by_seat.setdefault(int(seat), []).append((start, end))
    oversold = 0
    for spans in by_seat.values():
        spans.sort()
        if any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)):
            oversold += 1
    return oversold


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return 0.0


async def verify(
    http: httpx.AsyncClient,
    base_url: str,
    *,
    stage: Stage,
    people: list[Person],
    secret_key: str,
    admission_fallback: tuple[str, str] | None,
    drain_timeout_s: float,
    capacity: int,
) -> Verification:
    """Check the end state; waits (up to ``drain_timeout_s``) for MySQL to catch up."""
    v = Verification()
    live = live_reservations(people)
    v.client_reservations = len(live)
    v.client_sold_seats = sum(len(p.reservation["seat_ids"]) for p in live if p.reservation)
    v.oversold_seats = oversold_seats(people)
    v.idempotency_mismatches = sum(1 for p in people if p.replay_mismatch)
    sold_ids = {int(s) for p in live if p.reservation for s in p.reservation["seat_ids"]}

    await _check_seat_map(http, base_url, v, stage, secret_key, admission_fallback, sold_ids)
    if v.seatmap_sold is not None and v.seatmap_sold > capacity:
        v.oversold_seats += v.seatmap_sold - capacity

    # The read side is eventually consistent: wait for the worker to drain.
    started = time.monotonic()
    sid = stage.session_id
    while True:
        r = await http.get(f"{base_url}/api/stats/sessions/{sid}")
        if r.status_code == 200:
            stats = r.json()
            v.mysql_reservations = int(stats["reservation_count"])
            v.mysql_sold = int(stats["sold_count"])
            if (v.mysql_reservations, v.mysql_sold) == (v.client_reservations, v.client_sold_seats):
                v.drained = True
                break
        if time.monotonic() - started > drain_timeout_s:
            break
        await asyncio.sleep(0.25)
    v.drain_s = time.monotonic() - started
    if v.mysql_reservations is not None:
        v.lost = max(0, v.client_reservations - v.mysql_reservations)
        v.phantom = max(0, v.mysql_reservations - v.client_reservations)
    else:
        v.lost = v.client_reservations

    await _check_rankings(http, base_url, v, sid, live)
    return v


async def _check_seat_map(
    http: httpx.AsyncClient,
    base_url: str,
    v: Verification,
    stage: Stage,
    secret_key: str,
    fallback: tuple[str, str] | None,
    sold_ids: set[int],
) -> None:
    # The seat map needs an admission: an observer logs in as a guest and is given one signed
    # with the deployment's secret (this is the operator's tool); if that secret is not ours
    # (a remote target), the last admission a simulated person received is used instead.
    attempts: list[tuple[str, str]] = []
    login = await http.post(f"{base_url}/api/auth/guest", json={"nickname": "sim-observer"})
    if login.status_code == 201:
        body = login.json()
        token, _ = issue_admission_token(
            secret=secret_key,
            user_id=body["user_id"],
            session_id=stage.session_id,
            queue_position=None,
            ttl_s=120,
        )
        attempts.append((body["access_token"], token))
    if fallback is not None:
        attempts.append(fallback)
    for access, admission in attempts:
        r = await http.get(
            f"{base_url}/api/ticketing/sessions/{stage.session_id}/seats",
            headers={"Authorization": f"Bearer {access}", "X-Admission-Token": admission},
        )
        if r.status_code == 200:
            seats = r.json()["seats"]
            v.seatmap_sold = sum(1 for s in seats if s["status"] == "sold")
            v.seatmap_held = sum(1 for s in seats if s["status"] == "held")
            shown_sold = {int(s["seat_id"]) for s in seats if s["status"] == "sold"}
            v.sold_seats_not_in_map = len(sold_ids - shown_sold)
            return
        v.seatmap_error = f"{r.status_code} {r.text[:200]}"


async def _check_rankings(
    http: httpx.AsyncClient, base_url: str, v: Verification, sid: int, live: list[Person]
) -> None:
    # The ranking shows the best 100 live reservations: exactly the lowest live ranks.
    expected = sorted((int(p.reservation["rank"]), str(p.user_id)) for p in live if p.reservation)[
        :100
    ]
    r = await http.get(f"{base_url}/api/sessions/{sid}/rankings", params={"limit": 100})
    if r.status_code != 200:
        v.ranking_mismatches.append(f"rankings -> {r.status_code}")
        return
    got = [(int(i["rank"]), str(i["user_id"])) for i in r.json()["items"]]
    v.ranking_checked = len(got)
    if got != expected:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        v.ranking_mismatches.append(f"missing {missing} extra {extra} (first 5 each)")
