"""Booking under contention: holds/s and reservations/s through ticket_server alone (and,
with ``--gateway``, through the gateway in front of it), with p50/p99 latency.

    .venv/bin/python bench/booking.py [--duration 10] [--clients 64] [--seats 400]
        [--hot 40] [--gateway] [--database-url URL] [--redis-url URL]

Starts what it needs on free ports: ticket_server (uvicorn, httptools) and, with
``--gateway``, the gateway in front of it (rate limiting off: it measures booking, not the
limiter); a SQLite file and an embedded Valkey unless URLs are given (use your own DB index /
database; nothing is flushed). Each target gets a fresh session per phase:

- holds: every client holds a random block of 1-2 adjacent seats among the ``--hot`` first
  seats and releases it at once when it got it: heavy contention (most attempts are 409).
  Reported: hold attempts/s, successful holds/s, p50/p99 of the hold call.
- reservations: every client holds one random free seat (retrying on 409), confirms it with
  an Idempotency-Key, then cancels it (so seats and the per-user limit recycle). Reported:
  reservations/s, p50/p99 of the confirm call, and of the whole hold+confirm.

Tokens are signed locally with the same secret (admission without queueing: the queue is
benchmarked by bench/queue_joins.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from benchkit import (
    EVENT_LOOP,
    ROOT,
    add_store_arguments,
    cpu_seconds,
    free_port,
    stores_for_bench,
)

from shared.tokens import issue_access_token, issue_admission_token, new_user_id

SECRET = "bench-secret-key-0123456789-0123456789-abcdef"


def create_session(database_url: str, seats: int) -> tuple[int, list[int]]:
    """A venue with ``seats`` seats and one session whose booking opened a minute ago."""
    from sqlalchemy import insert, select

    from shared.db.engine import make_engine
    from shared.db.models import Performance, PerformanceSession, Seat, Venue

    now = datetime.now(UTC)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            vid = conn.execute(
                insert(Venue).values(name="Bench", address="-", seat_count=seats, created_at=now)
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(Seat),
                [
                    {
                        "venue_id": vid,
                        "label": f"R{i // 100}-{i % 100 + 1}",
                        "row": f"R{i // 100}",
                        "number": i % 100 + 1,
                        "grade": "R",
                        "price": 100,
                    }
                    for i in range(seats)
                ],
            )
            pid = conn.execute(
                insert(Performance).values(title="Bench", venue_id=vid, created_at=now)
            ).inserted_primary_key[0]  # type: ignore[index]
            sid = conn.execute(
                insert(PerformanceSession).values(
                    performance_id=pid,
                    starts_at=now + timedelta(days=1),
                    booking_opens_at=now - timedelta(minutes=1),
                    queue_max_active=1000,
                    queue_admit_per_second=1000,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            ids = conn.execute(select(Seat.id).where(Seat.venue_id == vid).order_by(Seat.id))
            return int(sid), [int(r[0]) for r in ids]
    finally:
        engine.dispose()


def start(factory: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--port", str(port),
         "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log",
         "--loop", EVENT_LOOP, "--http", "httptools", "--backlog", "4096"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{factory} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{factory} did not start")


@dataclass
class Stats:
    """Latencies (s) and status counts of one phase."""

    lat: dict[str, list[float]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, seconds: float, status: int) -> None:
        self.lat.setdefault(what, []).append(seconds)
        key = f"{what} {status}"
        self.status[key] = self.status.get(key, 0) + 1

    def pct(self, what: str) -> tuple[float, float]:
        xs = sorted(self.lat.get(what, [0.0]))
        p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
        return statistics.median(xs) * 1000, p99 * 1000

    def ok(self, what: str, status: int) -> int:
        return self.status.get(f"{what} {status}", 0)


class Client:
    """One simulated user with its tokens."""

    def __init__(self, session_id: int, nickname: str) -> None:
        uid = new_user_id()
        access = issue_access_token(secret=SECRET, user_id=uid, nickname=nickname, ttl_s=3600)
        admission, _ = issue_admission_token(
            secret=SECRET, user_id=uid, session_id=session_id, queue_position=1, ttl_s=3600
        )
        self.auth = {"Authorization": f"Bearer {access}"}
        self.headers = {**self.auth, "X-Admission-Token": admission}


async def timed(
    http: aiohttp.ClientSession, stats: Stats, what: str, method: str, url: str, **kw: Any
) -> tuple[int, Any]:
    t0 = time.perf_counter()
    async with http.request(method, url, **kw) as r:
        body = await r.read()
    stats.add(what, time.perf_counter() - t0, r.status)
    return r.status, (json.loads(body) if body else None)


async def holds_phase(base: str, sid: int, seat_ids: list[int], args: Any) -> Stats:
    stats = Stats()
    hot = seat_ids[: args.hot]
    stop = time.monotonic() + args.duration

    async def client(http: aiohttp.ClientSession, c: Client, rng: random.Random) -> None:
        while time.monotonic() < stop:
            n = rng.randint(1, 2)
            first = rng.randrange(0, len(hot) - n + 1)
            status, body = await timed(
                http, stats, "hold", "POST", f"{base}/api/ticketing/sessions/{sid}/holds",
                json={"seat_ids": hot[first : first + n]}, headers=c.headers,
            )  # fmt: skip
            if status == 201:
                await timed(
                    http, stats, "release", "DELETE",
                    f"{base}/api/ticketing/holds/{body['hold_id']}", headers=c.auth,
                )  # fmt: skip

    await run_clients(client, sid, args)
    return stats


async def reservations_phase(base: str, sid: int, seat_ids: list[int], args: Any) -> Stats:
    stats = Stats()
    stop = time.monotonic() + args.duration

    async def client(http: aiohttp.ClientSession, c: Client, rng: random.Random) -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            status, body = await timed(
                http, stats, "hold", "POST", f"{base}/api/ticketing/sessions/{sid}/holds",
                json={"seat_ids": [rng.choice(seat_ids)]}, headers=c.headers,
            )  # fmt: skip
            if status != 201:
                continue
            status, body = await timed(
                http, stats, "confirm", "POST", f"{base}/api/ticketing/reservations",
                json={"hold_id": body["hold_id"]},
                headers={**c.headers, "Idempotency-Key": uuid.uuid4().hex},
            )  # fmt: skip
            if status != 201:
                continue
            stats.lat.setdefault("hold+confirm", []).append(time.perf_counter() - t0)
            await timed(
                http, stats, "cancel", "DELETE",
                f"{base}/api/ticketing/reservations/{body['reservation_id']}", headers=c.auth,
            )  # fmt: skip

    await run_clients(client, sid, args)
    return stats


async def run_clients(fn: Any, sid: int, args: Any) -> None:
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        clients = [Client(sid, f"bench{i}") for i in range(args.clients)]
        await asyncio.gather(*(fn(http, c, random.Random(i)) for i, c in enumerate(clients)))


def report(name: str, phase: str, stats: Stats, seconds: float, cpu: float) -> dict[str, Any]:
    if phase == "holds":
        attempts = len(stats.lat.get("hold", []))
        ok = stats.ok("hold", 201)
        p50, p99 = stats.pct("hold")
        row = {"target": name, "phase": phase, "attempts/s": attempts / seconds,
               "ok/s": ok / seconds, "conflict %": 100 * stats.ok("hold", 409) / max(attempts, 1),
               "p50 ms": p50, "p99 ms": p99}  # fmt: skip
    else:
        ok = stats.ok("confirm", 201)
        p50, p99 = stats.pct("confirm")
        q50, q99 = stats.pct("hold+confirm")
        row = {"target": name, "phase": phase, "reservations/s": ok / seconds,
               "confirm p50 ms": p50, "confirm p99 ms": p99,
               "hold+confirm p50 ms": q50, "hold+confirm p99 ms": q99}  # fmt: skip
    requests = sum(len(v) for k, v in stats.lat.items() if k != "hold+confirm")
    row["server CPU ms/request"] = 1000 * cpu / max(requests, 1)
    unexpected = {
        k: v for k, v in stats.status.items() if k.split()[1] not in ("201", "204", "409")
    }
    if unexpected:
        row["unexpected"] = unexpected
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--clients", type=int, default=64, help="concurrent clients")
    p.add_argument("--seats", type=int, default=400)
    p.add_argument("--hot", type=int, default=40, help="seats fought over in the holds phase")
    p.add_argument("--gateway", action="store_true", help="also measure through the gateway")
    add_store_arguments(p)
    args = p.parse_args()

    with stores_for_bench(args.database_url, args.redis_url) as (database_url, redis_url):
        from boxoffice.db import migrate

        migrate(database_url)
        env = {**os.environ, "BOXOFFICE_DATABASE_URL": database_url,
               "BOXOFFICE_REDIS_URL": redis_url, "BOXOFFICE_SECRET_KEY": SECRET,
               "BOXOFFICE_LOG_LEVEL": "WARNING", "BOXOFFICE_HOLD_TTL_S": "120"}  # fmt: skip
        procs: list[subprocess.Popen[bytes]] = []
        rows = []
        try:
            tport = free_port()
            ticket = start("ticket_server.app:create_app", tport, env)
            procs.append(ticket)
            targets = [("ticket_server", f"http://127.0.0.1:{tport}", ticket.pid)]
            if args.gateway:
                gport = free_port()
                genv = {**env, "BOXOFFICE_TICKET_SERVER_URL": f"http://127.0.0.1:{tport}",
                        "BOXOFFICE_RATE_LIMIT": json.dumps({"enabled": False})}  # fmt: skip
                gw = start("gateway.app:create_app", gport, genv)
                procs.append(gw)
                targets.append(("gateway→ticket_server", f"http://127.0.0.1:{gport}", gw.pid))
            for name, base, pid in targets:
                for phase, fn in (("holds", holds_phase), ("reservations", reservations_phase)):
                    sid, seat_ids = create_session(database_url, args.seats)
                    measured = {pid, ticket.pid}  # the gateway's CPU and ticket_server's
                    cpu0 = sum(cpu_seconds(p) for p in measured)
                    t0 = time.monotonic()
                    stats = asyncio.run(fn(base, sid, seat_ids, args))
                    seconds = time.monotonic() - t0
                    cpu1 = sum(cpu_seconds(p) for p in measured)
                    rows.append(report(name, phase, stats, seconds, cpu1 - cpu0))
                    print(json.dumps(rows[-1], default=lambda x: round(x, 2)), flush=True)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)

    print(f"\nmachine: {os.cpu_count()} CPUs; clients={args.clients}, seats={args.seats}, "
          f"hot={args.hot}, {args.duration:.0f} s per phase")  # fmt: skip
    for row in rows:
        cells = ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
        )
        print(f"  {cells}")
    by = {(r["target"], r["phase"]): r for r in rows}
    if args.gateway:
        for phase, key in (("holds", "ok/s"), ("reservations", "reservations/s")):
            direct, via = by[("ticket_server", phase)], by[("gateway→ticket_server", phase)]
            print(f"  gateway/direct {phase}: {via[key] / max(direct[key], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
