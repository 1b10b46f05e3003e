"""Worker drain rate: prefill a backlog of reservation events in Redis, start N worker
processes, and time how fast they persist it into the database (events/s).

    .venv/bin/python bench/worker_drain.py                       # 100,000 events, 1 and 2 workers
    .venv/bin/python bench/worker_drain.py --workers 1 2 3 --batch-size 2000

Defaults: MariaDB at ``mysql+pymysql://root@127.0.0.1:3306/bx_bench_worker`` (created and
migrated here; its reservation tables are emptied before each run) and Redis DB index 6,
which must be the benchmark's own: the stream registry there is emptied at start. Each
event is a ``reservation.completed`` with ``--seats`` seats, so one event is one reservation
row, ``--seats`` seat rows and a ranking row. The clock starts when the streams are
registered (the workers are already up) and stops when the group's lag (unread + pending,
XINFO GROUPS) is 0. ``--e2e N`` also starts api_server, ticket_server, gateway and a worker
and times N real reservations until their rank is visible through the gateway.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
from benchkit import ROOT, cpu_seconds, free_port
from sqlalchemy import Engine, delete, func, insert, select

from boxoffice.db import migrate
from shared import keys
from shared.db.engine import make_engine
from shared.db.models import (
    Performance,
    PerformanceSession,
    Ranking,
    Reservation,
    ReservationSeat,
    Seat,
    Venue,
)
from shared.events import ReservationCompleted, to_fields
from shared.tokens import (
    issue_access_token,
    issue_admission_token,
    new_user_id,
)
from tests.fixtures.services import ensure_mysql_database
from ticket_server.worker.metrics import group_backlog

VENUE_SEATS = 10_000
T0 = datetime(2026, 11, 25, tzinfo=UTC)


def prepare_catalog(engine: Engine, sessions: int) -> tuple[list[int], list[int]]:
    """A venue of VENUE_SEATS seats and ``sessions`` sessions (reused across runs)."""
    with engine.begin() as conn:
        if engine.dialect.name == "mysql":
            # TRUNCATE leaves no purge work behind to slow down the next run.
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for table in ("reservation_seats", "rankings", "reservations"):
                conn.exec_driver_sql(f"TRUNCATE TABLE {table}")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        else:
            for model in (ReservationSeat, Ranking, Reservation):
                conn.execute(delete(model))
        venue_id = conn.scalar(select(Venue.id).where(Venue.name == "bench-hall"))
        if venue_id is None:
            venue_id = conn.execute(
                insert(Venue).values(name="bench-hall", address="-", seat_count=VENUE_SEATS)
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(Seat),
                [
                    {
                        "venue_id": venue_id,
                        "label": f"R-{i}",
                        "row": "R",
                        "number": i,
                        "grade": "R",
                        "price": 10,
                    }
                    for i in range(1, VENUE_SEATS + 1)
                ],
            )
            conn.execute(
                insert(Performance).values(title="bench", description="", venue_id=venue_id)
            )
        perf_id = conn.scalar(select(Performance.id).where(Performance.venue_id == venue_id))
        have = (
            conn.scalar(
                select(func.count())
                .select_from(PerformanceSession)
                .where(PerformanceSession.performance_id == perf_id)
            )
            or 0
        )
        if have < sessions:
            conn.execute(
                insert(PerformanceSession),
                [
                    {
                        "performance_id": perf_id,
                        "starts_at": T0,
                        "booking_opens_at": T0,
                        "queue_max_active": 100,
                        "queue_admit_per_second": 10.0,
                    }
                    for _ in range(sessions - have)
                ],
            )
        session_ids = list(
            conn.scalars(
                select(PerformanceSession.id)
                .where(PerformanceSession.performance_id == perf_id)
                .order_by(PerformanceSession.id)
                .limit(sessions)
            )
        )
        seat_ids = list(
            conn.scalars(select(Seat.id).where(Seat.venue_id == venue_id).order_by(Seat.id))
        )
    return session_ids, seat_ids


def prefill(
    client: redis.Redis,
    session_ids: list[int],
    seat_ids: list[int],
    events: int,
    seats_per_event: int,
) -> None:
    """XADD the backlog (streams not registered yet, so the workers do not see it)."""
    per_session = len(seat_ids) // seats_per_event
    pipe = client.pipeline(transaction=False)
    for i in range(events):
        s_index, slot = divmod(i, per_session)
        ev = ReservationCompleted(
            reservation_id=f"bench-{i}",
            session_id=session_ids[s_index],
            user_id=f"user-{i}",
            nickname=f"nick-{i}",
            seat_ids=seat_ids[slot * seats_per_event : (slot + 1) * seats_per_event],
            rank=slot + 1,
            completion_ms=slot * 3,
            queue_position=slot + 1,
            created_at=T0 + timedelta(milliseconds=slot * 3),
        )
        pipe.xadd(keys.events_stream(ev.session_id), to_fields(ev))  # type: ignore[arg-type]
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


def clear_redis(client: redis.Redis, session_ids: list[int]) -> None:
    """Remove this benchmark's streams and their registration."""
    for s in session_ids:
        client.delete(keys.events_stream(s))
        client.srem(keys.EVENT_STREAMS, s)


def _database_server_pid() -> int | None:
    """The local MariaDB/MySQL server process, if there is one (for its CPU time)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def run_once(
    args: argparse.Namespace,
    workers: int,
    engine: Engine,
    client: redis.Redis,
    session_ids: list[int],
    seat_ids: list[int],
) -> float:
    """One drain of the whole backlog with ``workers`` processes; returns events/s."""
    clear_redis(client, session_ids)
    prepare_catalog(engine, len(session_ids))
    prefill(client, session_ids, seat_ids, args.events, args.seats)
    env = dict(os.environ) | {
        "BOXOFFICE_DATABASE_URL": args.database_url,
        "BOXOFFICE_REDIS_URL": args.redis_url,
        "BOXOFFICE_WORKER_DISCOVER_INTERVAL_S": "0.05",
        "BOXOFFICE_LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ticket_server.worker.main",
                "--batch-size",
                str(args.batch_size),
                "--block-ms",
                "100",
                "--metrics-port",
                str(free_port()),
            ],
            cwd=ROOT,
            env=env,
        )
        for _ in range(workers)
    ]
    try:
        time.sleep(2.0)  # imports and connections, outside the measured time
        db_pid = _database_server_pid()
        cpu_before = [cpu_seconds(p.pid) for p in procs], cpu_seconds(db_pid) if db_pid else 0.0
        started = time.perf_counter()
        client.sadd(keys.EVENT_STREAMS, *session_ids)
        while True:
            backlog = group_backlog(client, session_ids=session_ids)
            if backlog.streams == len(session_ids) and backlog.lag == 0:
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker died")
            if time.perf_counter() - started > args.timeout_s:
                raise SystemExit(f"not drained after {args.timeout_s} s: {backlog}")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        worker_cpu = sum(cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before[0], strict=True))
        db_cpu = (cpu_seconds(db_pid) - cpu_before[1]) if db_pid else float("nan")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    with engine.connect() as conn:
        n_res = conn.scalar(select(func.count()).select_from(Reservation))
        n_seats = conn.scalar(select(func.count()).select_from(ReservationSeat))
        n_rank = conn.scalar(select(func.count()).select_from(Ranking))
    ok = (n_res, n_seats, n_rank) == (args.events, args.events * args.seats, args.events)
    rate = float(args.events / elapsed)
    print(
        f"workers={workers} batch={args.batch_size}: {args.events:,} events in {elapsed:.2f} s "
        f"= {rate:,.0f} events/s; rows: reservations={n_res:,} seats={n_seats:,} "
        f"rankings={n_rank:,} {'OK' if ok else 'MISMATCH'}",
        flush=True,
    )
    per_event_us = (worker_cpu + db_cpu) / args.events * 1e6
    print(
        f"  CPU per event: workers {worker_cpu / args.events * 1e6:.0f} us, database server "
        f"{db_cpu / args.events * 1e6:.0f} us (all its clients); on 2 idle cores that bounds "
        f"the rate near {2e6 / per_event_us:,.0f} events/s",
        flush=True,
    )
    if not ok:
        raise SystemExit("row counts do not match the events")
    return rate


BENCH_SECRET = "bench-secret-key-for-worker-drain-0123456789"


def _spawn_service(name: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "boxoffice.cli", "serve", name, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_healthy(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def end_to_end_lag(args: argparse.Namespace, engine: Engine) -> list[float]:
    """Book ``args.e2e`` reservations one after another on ticket_server (tokens signed with
    the shared secret, as the gateway's queue would issue them) and time, for each, how long
    until its rank shows in ``GET /api/sessions/{id}/rankings`` through the gateway."""
    ports = {name: free_port() for name in ("gateway", "api", "ticket", "worker")}
    env = dict(os.environ) | {
        "BOXOFFICE_DATABASE_URL": args.database_url,
        "BOXOFFICE_REDIS_URL": args.redis_url,
        "BOXOFFICE_SECRET_KEY": BENCH_SECRET,
        # A local benchmark: the admin token may stay the public default.
        "BOXOFFICE_ALLOW_INSECURE_DEFAULTS": "true",
        "BOXOFFICE_API_SERVER_URL": f"http://127.0.0.1:{ports['api']}",
        "BOXOFFICE_TICKET_SERVER_URL": f"http://127.0.0.1:{ports['ticket']}",
        # Each poll comes from its own (forwarded) address, so the browse limit of one
        # client does not throttle the measurement.
        "BOXOFFICE_TRUSTED_PROXIES": "127.0.0.1/32",
        "BOXOFFICE_LOG_LEVEL": "WARNING",
    }
    with engine.begin() as conn:
        perf_id = conn.scalar(select(Performance.id).where(Performance.title == "bench"))
        session_id = conn.execute(
            insert(PerformanceSession).values(
                performance_id=perf_id,
                starts_at=datetime.now(UTC) + timedelta(days=1),
                booking_opens_at=datetime.now(UTC) - timedelta(minutes=1),
                queue_max_active=100,
                queue_admit_per_second=10.0,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        venue_id = conn.scalar(select(Venue.id).where(Venue.name == "bench-hall"))
        seats = list(
            # One warm-up reservation more; ranks stay within the top 100 the endpoint lists.
            conn.scalars(
                select(Seat.id).where(Seat.venue_id == venue_id).limit(min(args.e2e, 99) + 1)
            )
        )
    procs = [_spawn_service(n, ports[n], env) for n in ("api", "ticket", "gateway")]
    procs.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ticket_server.worker.main",
                "--metrics-port",
                str(ports["worker"]),
                "--block-ms",
                "1000",
            ],
            cwd=ROOT,
            env=env,
        )
    )
    lags: list[float] = []
    polls = 0
    try:
        for n in ("api", "ticket", "gateway"):
            _wait_healthy(f"http://127.0.0.1:{ports[n]}")
        ticket = httpx.Client(base_url=f"http://127.0.0.1:{ports['ticket']}", timeout=10)
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{ports['gateway']}", timeout=10)
        for i, seat in enumerate(seats):
            user_id = new_user_id()
            access = issue_access_token(
                secret=BENCH_SECRET, user_id=user_id, nickname=f"fan{i}", ttl_s=600
            )
            admission, _ = issue_admission_token(
                secret=BENCH_SECRET,
                user_id=user_id,
                session_id=session_id,
                queue_position=i + 1,
                ttl_s=600,
            )
            headers = {"Authorization": f"Bearer {access}", "X-Admission-Token": admission}
            r = ticket.post(
                f"/api/ticketing/sessions/{session_id}/holds",
                json={"seat_ids": [seat]},
                headers=headers,
            )
            r.raise_for_status()
            r = ticket.post(
                "/api/ticketing/reservations",
                json={"hold_id": r.json()["hold_id"]},
                headers=headers | {"Idempotency-Key": f"k{i}"},
            )
            r.raise_for_status()
            confirmed = time.perf_counter()
            rank = r.json()["rank"]
            while True:
                polls += 1
                page = gateway.get(
                    f"/api/sessions/{session_id}/rankings?limit=100",
                    headers={
                        "X-Forwarded-For": f"10.{polls // 62500 % 250}.{polls // 250 % 250}."
                        f"{polls % 250}"
                    },
                )
                if page.status_code == 200 and any(
                    item["rank"] == rank for item in page.json()["items"]
                ):
                    break
                if time.perf_counter() - confirmed > 30:
                    raise SystemExit(f"rank {rank} not visible after 30 s: {page.text[:300]}")
                time.sleep(0.002)
            if i > 0:  # the first one also waits for the worker to discover the new stream
                lags.append(time.perf_counter() - confirmed)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        client = redis.Redis.from_url(args.redis_url, decode_responses=True)
        client.srem(keys.EVENT_STREAMS, session_id)
        stale = list(client.scan_iter(match=keys.session_key(session_id, "*"), count=1000))
        if stale:
            client.delete(*stale)
        client.close()
    return lags


def main() -> int:
    """Run the drain benchmark for each worker count and print rates and ratios."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "mysql+pymysql://root@127.0.0.1:3306/bx_bench_worker"
        ),
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
    )
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seats", type=int, default=2, help="seats per reservation")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--timeout-s", type=float, default=300.0)
    p.add_argument(
        "--e2e",
        type=int,
        default=0,
        metavar="N",
        help="also time N reservations (<= 99) until their rank is visible through the gateway",
    )
    args = p.parse_args()

    if args.database_url.startswith("mysql"):
        ensure_mysql_database(args.database_url)
    migrate(args.database_url)
    engine = make_engine(args.database_url)
    client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    # The workers consume every registered stream: start from an empty registry (this DB
    # index must be the benchmark's own).
    for member in client.smembers(keys.EVENT_STREAMS):
        client.delete(keys.events_stream(int(member)))
    client.delete(keys.EVENT_STREAMS)
    per_session = VENUE_SEATS // args.seats
    session_ids, seat_ids = prepare_catalog(engine, math.ceil(args.events / per_session))
    print(
        f"backlog: {args.events:,} events x {args.seats} seats over {len(session_ids)} "
        f"sessions; database {engine.dialect.name}",
        flush=True,
    )
    rates = {}
    try:
        for n in args.workers if args.events > 0 else []:
            rates[n] = run_once(args, n, engine, client, session_ids, seat_ids)
    finally:
        clear_redis(client, session_ids)
        client.close()
        engine.dispose()
    if args.e2e:
        lags = sorted(end_to_end_lag(args, engine))
        q = statistics.quantiles(lags, n=100, method="inclusive")
        print(
            f"end-to-end lag, reservation confirmed -> rank visible via the gateway "
            f"({len(lags)} reservations): p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, "
            f"max {lags[-1] * 1000:.1f} ms"
        )
    base = rates.get(args.workers[0], 0.0) or 1.0
    for n, r in rates.items():
        print(
            f"  {n} worker(s): {r:,.0f} events/s  ({r / base:.2f}x of {args.workers[0]}; "
            f"goal 10,000/s: {'met' if r >= 10_000 else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
