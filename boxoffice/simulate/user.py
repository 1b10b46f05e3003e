"""One simulated person at an on-sale: log in early, join the queue when booking opens, wait
their turn, look at the seat map, try to hold seats (again, on conflicts, like people do),
reserve, and sometimes cancel."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt

from boxoffice.simulate.catalog import Stage
from boxoffice.simulate.client import Reply, SimClient
from boxoffice.simulate.options import SimOptions

# How many seats people want: pairs mostly (weights roughly like real on-sales).
SEAT_COUNT_WEIGHTS = {1: 15, 2: 50, 3: 15, 4: 20}


@dataclass
class Crowd:
    """Live counters the progress bar and the sampler read."""

    waiting: int = 0
    active: int = 0
    finished: int = 0
    confirmed: int = 0  # live (not cancelled) reservations
    sold_seats: int = 0  # seats in live reservations
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass
class Person:
    """What one simulated person did and saw (wall-clock epoch seconds)."""

    index: int
    base_url: str
    nickname: str
    user_id: str | None = None
    access_token: str | None = None
    join_sent: float | None = None
    join_received: float | None = None
    last_waiting_sent: float | None = None  # a "waiting" answer to a request sent then
    admitted_received: float | None = None
    admission_token: str | None = None
    queue_position: int | None = None  # from the admission token: the server's join order
    admission_iat: int | None = None
    slot_released: float | None = None  # when we sent what frees the slot (reserve / leave)
    hold_attempts: int = 0
    conflicts: int = 0
    reservation: dict[str, Any] | None = None
    reservation_sent: float | None = None
    cancel_sent: float | None = None
    cancelled: bool = False
    replay_mismatch: bool = False
    outcome: str = "pending"
    detail: str = ""
    pre_queue: bool = False  # joins the pre-queue (before booking opens)

    def admission_window(self) -> tuple[float, float] | None:
        """When the server admitted us, as tightly as a client can know it."""
        if self.admitted_received is None:
            return None
        lo = self.last_waiting_sent or self.join_sent or self.admitted_received
        hi = self.admitted_received
        if self.admission_iat is not None:
            # The token's ``iat`` is the admission second (gateway/queue signs every copy
            # from the stored admission time); intersect when it is consistent with what we
            # saw (a remote target's clock may disagree with ours).
            tlo, thi = max(lo, float(self.admission_iat)), min(hi, self.admission_iat + 1.0)
            if tlo <= thi:
                lo, hi = tlo, thi
        return lo, hi


def forwarded_for(person: Person) -> dict[str, str]:
    """A per-person client address (10.x.y.z) for gateways that trust our proxy hop."""
    i = person.index
    return {"X-Forwarded-For": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"}


async def log_in(client: SimClient, person: Person, *, with_address: bool) -> bool:
    """``POST /api/auth/guest`` (people are on the site before the on-sale starts)."""
    r = await client.call(
        "login",
        "POST",
        f"{person.base_url}/api/auth/guest",
        json={"nickname": person.nickname},
        headers=forwarded_for(person) if with_address else None,
    )
    if r is None or r.status_code != 201:
        person.detail = f"login {_status(r)}"
        return False
    body = r.json()
    person.user_id = body["user_id"]
    person.access_token = body["access_token"]
    return True


class Simulation:
    """Shared context of every person in one run."""

    def __init__(
        self,
        *,
        client: SimClient,
        options: SimOptions,
        stage: Stage,
        heartbeat_timeout_s: float,
        rng: random.Random,
    ) -> None:
        self.client = client
        self.options = options
        self.stage = stage
        self.crowd = Crowd()
        self.rng = rng
        self.poll_max = options.poll_max_s or max(options.poll_min_s, heartbeat_timeout_s / 3)
        self.sold_out_seen_at: float | None = None
        self.last_admission_token: tuple[str, str] | None = None  # (access, admission)

    # --- helpers -----------------------------------------------------------------------------

    async def think(self) -> None:
        """A person's pause between steps (uniform around the mean)."""
        if self.options.think_s > 0:
            await asyncio.sleep(self.options.think_s * (0.5 + self.rng.random()))

    def headers(self, person: Person, *, admission: bool = False) -> dict[str, str]:
        """Identity (and admission) headers of ``person``."""
        h = {"Authorization": f"Bearer {person.access_token}"}
        if admission and person.admission_token:
            h["X-Admission-Token"] = person.admission_token
        if self.options.forwarded_for:
            h.update(forwarded_for(person))
        return h

    def _finish(self, person: Person, outcome: str, detail: str = "") -> None:
        person.outcome = outcome
        person.detail = detail
        self.crowd.outcomes[outcome] += 1
        self.crowd.finished += 1

    # --- the journey -------------------------------------------------------------------------

    async def run(self, person: Person, arrive_at: float) -> None:
        """The journey of one (logged-in) person who joins at ``arrive_at`` (epoch s)."""
        if person.access_token is None:
            self._finish(person, "error", person.detail or "not logged in")
            return
        await asyncio.sleep(max(0.0, arrive_at - time.time()))
        if self.options.browse:
            await self.load_page(person)
        status = await self.join(person)
        if status is None:
            return
        self.crowd.waiting += 1
        try:
            status = await self.wait(person, status)
        finally:
            self.crowd.waiting -= 1
        if status is None:
            return
        self.crowd.active += 1
        try:
            await self.book(person)
        finally:
            self.crowd.active -= 1

    async def load_page(self, person: Person) -> None:
        """The session page everyone opens at once: an anonymous catalog GET (the kind the
        gateway's micro-cache exists for). Its answer does not change the journey."""
        await self.client.call(
            "page",
            "GET",
            f"{person.base_url}/api/sessions/{self.stage.session_id}",
            headers=forwarded_for(person) if self.options.forwarded_for else None,
        )

    async def join(self, person: Person) -> dict[str, Any] | None:
        """``POST /api/queue/{id}/join``, retried while booking is not open yet."""
        url = f"{person.base_url}/api/queue/{self.stage.session_id}/join"
        for _ in range(50):
            person.join_sent = time.time()
            r = await self.client.call("join", "POST", url, headers=self.headers(person))
            person.join_received = time.time()
            if r is not None and r.status_code == 200:
                body: dict[str, Any] = r.json()
                return body
            if r is not None and r.status_code == 409:
                # Booking not open yet (our clock ran ahead of the server's): wait and retry.
                await asyncio.sleep(0.2)
                continue
            break
        self._finish(person, "error", f"join {_status(r)}")
        return None

    async def wait(self, person: Person, status: dict[str, Any]) -> dict[str, Any] | None:
        """Wait for admission; returns the admitted status, or None when the journey ends."""
        if self.options.wait_mode == "sse" and status.get("status") == "waiting":
            sse_status = await self._wait_sse(person)
            if sse_status is not None:
                status = sse_status
        url = f"{person.base_url}/api/queue/{self.stage.session_id}"
        while True:
            state = status.get("status")
            if state == "admitted":
                self._admitted(person, status)
                return status
            if state == "sold_out":
                if self.sold_out_seen_at is None:
                    self.sold_out_seen_at = time.time()
                self._finish(person, "sold_out")
                return None
            if state == "expired":
                self._finish(person, "expired")
                return None
            if state not in ("waiting", "pre_queue"):
                self._finish(person, "error", f"queue status {state!r}")
                return None
            await asyncio.sleep(self._poll_interval(status))
            sent = time.time()
            r = await self.client.call("status", "GET", url, headers=self.headers(person))
            if r is None or r.status_code != 200:
                self._finish(person, "error", f"status {_status(r)}")
                return None
            status = r.json()
            if status.get("status") == "waiting":
                person.last_waiting_sent = sent

    async def _wait_sse(self, person: Person) -> dict[str, Any] | None:
        """Follow ``/events`` until a final status; None to fall back to polling."""
        url = f"{person.base_url}/api/queue/{self.stage.session_id}/events"
        async for status in self.client.events("events", url, self.headers(person)):
            if status.get("status") != "waiting":
                return status
        return None

    def _poll_interval(self, status: dict[str, Any]) -> float:
        # A considerate frontend: poll about three times per expected wait (the server's
        # estimate), so the interval shrinks as the turn nears and an admission is noticed
        # within a sixth of the wait on average; never slower than a third of the heartbeat
        # timeout (polling is the heartbeat); jittered against herds.
        estimate = status.get("estimated_wait_s")
        if estimate is None:
            ahead = int(status.get("ahead") or 0)
            if ahead < self.stage.max_active:
                # No measured rate yet, next in line: a slot can free any time.
                return self.options.poll_min_s * (0.8 + 0.4 * self.rng.random())
            estimate = ahead / self.stage.admit_per_second
        base = min(self.poll_max, max(self.options.poll_min_s, float(estimate) / 3))
        return base * (0.8 + 0.4 * self.rng.random())

    def _admitted(self, person: Person, status: dict[str, Any]) -> None:
        person.admitted_received = time.time()
        token = status.get("admission_token")
        person.admission_token = token
        if token:
            claims = jwt.decode(token, options={"verify_signature": False})
            qpos, iat = claims.get("qpos"), claims.get("iat")
            person.queue_position = qpos if isinstance(qpos, int) else None
            person.admission_iat = iat if isinstance(iat, int) else None
            self.last_admission_token = (person.access_token or "", token)

    async def book(self, person: Person) -> None:
        """Seat map → hold (retrying conflicts) → reserve → maybe cancel."""
        sid = self.stage.session_id
        base = person.base_url
        await self.think()
        seats = await self._seat_map(person)
        if seats is None:
            return
        want = self.rng.choices(list(SEAT_COUNT_WEIGHTS), list(SEAT_COUNT_WEIGHTS.values()))[0]
        hold: dict[str, Any] | None = None
        while hold is None:
            if person.hold_attempts >= self.options.max_hold_attempts:
                await self._give_up(person, "gave_up", f"{person.conflicts} conflicts")
                return
            choice = choose_seats(seats, want, self.rng)
            if not choice:
                await self._give_up(person, "no_seats")
                return
            person.hold_attempts += 1
            r = await self.client.call(
                "hold",
                "POST",
                f"{base}/api/ticketing/sessions/{sid}/holds",
                headers=self.headers(person, admission=True),
                json={"seat_ids": choice},
            )
            if r is not None and r.status_code == 201:
                hold = r.json()
                break
            if r is not None and r.status_code == 409:
                person.conflicts += 1
                body = r.json()
                taken = set(body.get("conflicting_seat_ids") or choice)
                for seat in seats:
                    if seat["seat_id"] in taken:
                        seat["status"] = "held"
                if person.conflicts % 2 == 0:  # people reload the page now and then
                    fresh = await self._seat_map(person)
                    if fresh is None:
                        return
                    seats = fresh
                continue
            await self._give_up(person, "error", f"hold {_status(r)}")
            return
        await self.think()
        await self._reserve(person, hold)

    async def _seat_map(self, person: Person) -> list[dict[str, Any]] | None:
        r = await self.client.call(
            "seatmap",
            "GET",
            f"{person.base_url}/api/ticketing/sessions/{self.stage.session_id}/seats",
            headers=self.headers(person, admission=True),
        )
        if r is None or r.status_code != 200:
            await self._give_up(person, "error", f"seat map {_status(r)}")
            return None
        seats: list[dict[str, Any]] = r.json()["seats"]
        return seats

    async def _reserve(self, person: Person, hold: dict[str, Any]) -> None:
        key = uuid.uuid4().hex
        headers = self.headers(person, admission=True) | {"Idempotency-Key": key}
        url = f"{person.base_url}/api/ticketing/reservations"
        body = {"hold_id": hold["hold_id"]}
        person.reservation_sent = time.time()
        person.slot_released = person.reservation_sent
        r = await self.client.call("reserve", "POST", url, headers=headers, json=body)
        if r is None or r.status_code != 201:
            # Like a tidy frontend: let the seats go now rather than when the hold expires.
            await self.client.call(
                "release",
                "DELETE",
                f"{person.base_url}/api/ticketing/holds/{hold['hold_id']}",
                headers=self.headers(person),
            )
            await self._give_up(person, "error", f"reserve {_status(r)}")
            return
        reservation: dict[str, Any] = r.json()
        person.reservation = reservation
        self.crowd.confirmed += 1
        self.crowd.sold_seats += len(reservation["seat_ids"])
        if self.rng.random() < self.options.replay_rate:
            # A double click / a retry after a lost answer: must be the same reservation.
            again = await self.client.call(
                "reserve_replay", "POST", url, headers=headers, json=body
            )
            # A 5xx or no answer is counted as such; any other answer must be the original.
            if again is not None and again.status_code < 500:
                same = again.status_code in (200, 201) and (
                    again.json().get("reservation_id") == reservation["reservation_id"]
                )
                person.replay_mismatch = not same
        if self.rng.random() < self.options.cancel_rate:
            await self.think()
            person.cancel_sent = time.time()
            rid = reservation["reservation_id"]
            c = await self.client.call(
                "cancel",
                "DELETE",
                f"{person.base_url}/api/ticketing/reservations/{rid}",
                headers=self.headers(person),
            )
            if c is not None and c.status_code == 204:
                person.cancelled = True
                self.crowd.confirmed -= 1
                self.crowd.sold_seats -= len(reservation["seat_ids"])
                self._finish(person, "cancelled")
                return
            self._finish(person, "error", f"cancel {_status(c)}")
            return
        self._finish(person, "purchased")

    async def _give_up(self, person: Person, outcome: str, detail: str = "") -> None:
        """Leave the queue (frees the admitted slot for the next person) and stop."""
        person.slot_released = time.time()
        await self.client.call(
            "leave",
            "DELETE",
            f"{person.base_url}/api/queue/{self.stage.session_id}",
            headers=self.headers(person),
        )
        self._finish(person, outcome, detail)


def choose_seats(seats: list[dict[str, Any]], want: int, rng: random.Random) -> list[int]:
    """Seats a person would pick: ``want`` adjacent available seats in one row, front rows
    first more often than not; else any available ones; fewer if that is all there is."""
    available = [s for s in seats if s.get("status") == "available"]
    if not available:
        return []
    rows: dict[str, list[tuple[int, int]]] = {}
    for s in available:
        row, _, number = str(s["label"]).rpartition("-")
        rows.setdefault(row, []).append((int(number) if number.isdigit() else 0, s["seat_id"]))
    names = list(rows)
    # Skewed towards the front (the first rows of the map), like real demand.
    start = int(len(names) * rng.random() ** 2)
    for name in names[start:] + names[:start]:
        ordered = sorted(rows[name])
        runs = [
            ordered[i : i + want]
            for i in range(len(ordered) - want + 1)
            if ordered[i + want - 1][0] - ordered[i][0] == want - 1
        ]
        if runs:
            return [seat_id for _, seat_id in rng.choice(runs)]
    picked = rng.sample(available, min(want, len(available)))
    return [int(s["seat_id"]) for s in picked]


def _status(response: Reply | None) -> str:
    if response is None:
        return "no answer"
    return f"{response.status_code} {response.text[:200]}"
