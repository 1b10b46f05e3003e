"""SSE fan-out of the waiting room: N open ``/api/queue/{id}/events`` streams of one session
on one gateway (a real gateway process, a stand-in api_server, a private redis-server).
One change (the admitted user leaves: the next is admitted, everyone moves up one) must
reach every stream; reports how long until all have it, how many Redis calls the gateway
made meanwhile (O(1): one snapshot read, not one per stream), and the gateway's CPU and
memory per stream.

    .venv/bin/python bench/queue_sse.py [--streams 10000]
        [--checkout /tmp/base --checkout . --rounds 3]   (side by side, rounds alternate)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from benchkit import cpu_seconds, free_port, load_average, private_redis_server, serve
from gateway_proxy import start_gateway, wait_ready

from shared.tokens import issue_access_token

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-sse-secret-" * 3
SESSION = 77


def api_app() -> Any:  # run in a subprocess
    """The stand-in api_server: session facts (open an hour ago, one slot)."""
    from fastapi import FastAPI

    app = FastAPI()
    opens = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = {
        "id": SESSION,
        "performance_id": 1,
        "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "booking_opens_at": opens,
        "seat_count": 100,
        "sold_count": 0,
        "grades": [],
        "queue": {"max_active": 1, "admit_per_second": 1000},
    }

    @app.get("/api/sessions/{session_id}")
    async def session(session_id: int) -> dict[str, Any]:
        return body

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Stream:
    """One raw SSE client: the positions it was told, and when."""

    def __init__(self) -> None:
        self.positions: list[tuple[float, int | None, str]] = []
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, token: str) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(
            f"GET /api/queue/{SESSION}/events HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"data: {"):
                body = json.loads(line[6:])
                self.positions.append((time.perf_counter(), body["position"], body["status"]))


def full_passes(gc_log: Path | None, start: float, end: float) -> list[float]:
    """Durations of the full collections ``--gc-trace`` logged that overlap [start, end]."""
    if gc_log is None or not gc_log.exists():
        return []
    passes = [tuple(map(float, line.split())) for line in gc_log.read_text().splitlines()]
    return [took for at, took in passes if at < end and at + took > start]


async def bench(
    streams: int, gw_port: int, gw_pid: int, redis_url: str, gc_log: Path | None = None
) -> dict[str, float]:
    users = [f"sse-{i:08d}" for i in range(streams + 1)]
    tokens = {
        u: issue_access_token(secret=SECRET, user_id=u, nickname="n", ttl_s=3600) for u in users
    }
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}", limits=limits) as c:
        sem = asyncio.Semaphore(32)

        async def join(u: str) -> None:
            async with sem:
                r = await c.post(
                    f"/api/queue/{SESSION}/join", headers={"Authorization": f"Bearer {tokens[u]}"}
                )
                r.raise_for_status()

        await join(users[0])  # admitted at once (one slot)
        await asyncio.gather(*(join(u) for u in users[1:]))
        rss0 = rss_kib(gw_pid)
        clients = [Stream() for _ in users[1:]]
        tasks = [
            asyncio.create_task(s.run(gw_port, tokens[u]))
            for s, u in zip(clients, users[1:], strict=True)
        ]
        while sum(1 for s in clients if s.positions) < streams:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        rss1 = rss_kib(gw_pid)
        redis = aioredis.Redis.from_url(redis_url)
        idle_cpu0, idle_t0 = cpu_seconds(gw_pid), time.perf_counter()
        await asyncio.sleep(5.0)
        idle_cpu = (cpu_seconds(gw_pid) - idle_cpu0) / (time.perf_counter() - idle_t0)
        stats0 = await redis.info("commandstats")
        cpu0 = cpu_seconds(gw_pid)
        t0, wall0 = time.perf_counter(), time.time()
        r = await c.delete(
            f"/api/queue/{SESSION}", headers={"Authorization": f"Bearer {tokens[users[0]]}"}
        )
        r.raise_for_status()
        deadline = t0 + 15
        reached: list[float] = []
        while time.perf_counter() < deadline:
            reached = [
                next(t for t, p, st in s.positions if t > t0) - t0
                for s in clients
                if any(t > t0 for t, _, _ in s.positions)
            ]
            if len(reached) == streams:
                break
            await asyncio.sleep(0.05)
        window = time.perf_counter() - t0
        in_window = full_passes(gc_log, wall0, wall0 + window)
        cpu = cpu_seconds(gw_pid) - cpu0
        stats1 = await redis.info("commandstats")
        await redis.aclose()
        for t in tasks:
            t.cancel()
        for s in clients:
            if s.writer is not None:
                s.writer.close()
    calls = {
        k.removeprefix("cmdstat_"): int(stats1[k]["calls"]) - int(stats0.get(k, {}).get("calls", 0))
        for k in stats1
        if int(stats1[k]["calls"]) != int(stats0.get(k, {}).get("calls", 0))
    }
    reached.sort()
    figures = {
        "memory_b": (rss1 - rss0) * 1024 / streams,
        "cpu_us": cpu * 1e6 / streams,
        "reached": len(reached),
        "p50": reached[len(reached) // 2] if reached else float("nan"),
        "p99": reached[int(len(reached) * 0.99) - 1] if reached else float("nan"),
        "last": reached[-1] if reached else float("nan"),
        "scripts": calls.get("evalsha", 0),
    }
    print(f"streams: {streams}; load {load_average()}")
    print(
        f"gateway memory: {(rss1 - rss0) * 1024 / streams:.0f} B per open stream "
        f"(RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB)"
    )
    print(f"gateway CPU while idle: {idle_cpu * 1e6 / streams:.1f} µs per stream per second")
    if reached:
        p50, p99 = reached[len(reached) // 2], reached[int(len(reached) * 0.99) - 1]
        print(
            f"one change reached {len(reached)}/{streams} streams: p50 {p50:.3f} s, "
            f"p99 {p99:.3f} s, last {reached[-1]:.3f} s"
        )
    else:
        print("the change reached no stream")
    print(
        f"gateway CPU for it: {cpu * 1e6 / streams:.1f} µs per stream "
        f"({cpu:.2f} s over the {window:.2f} s window, ticks included)"
    )
    print(f"Redis commands in the window (all, scripts' inner calls included): {calls}")
    evalsha = calls.get("evalsha", 0)
    print(f"script calls in the window: {evalsha} (for {streams} streams)")
    if gc_log is not None:
        run = full_passes(gc_log, 0.0, time.time())
        print(
            f"gateway's full GC passes in the window: {len(in_window)} "
            f"({sum(in_window):.2f} s); in the whole run: {len(run)} "
            f"({', '.join(f'{t:.2f}' for t in run)} s)"
        )
    return figures


def run_once(checkout: Path, streams: int, gc_trace: bool) -> dict[str, float]:
    """One measurement: a private Redis, the stand-in api_server and ``checkout``'s gateway."""
    api_port, gw_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with private_redis_server() as redis_url:
        try:
            procs.append(
                subprocess.Popen([sys.executable, __file__, "--serve-api", str(api_port)], cwd=ROOT)
            )
            wait_ready(api_port)
            options = argparse.Namespace(redis_url=redis_url, log_level="WARNING", rate_limit=False)
            # A long heartbeat timeout: opening 10,000 streams takes longer than the default
            # 30 s, and a waiter whose stream is not open yet would lose its place.
            env = {"BOXOFFICE_SECRET_KEY": SECRET, "BOXOFFICE_QUEUE_HEARTBEAT_TIMEOUT_S": "600"}
            gc_log = None
            if gc_trace:
                gc_log = Path(tempfile.mkdtemp(prefix="queue-sse-gc-")) / "full-passes.log"
                env["BOXOFFICE_BENCH_GC_LOG"] = str(gc_log)
                env["PYTHONPATH"] = str(ROOT / "bench" / "gc_trace")
            gateway = start_gateway(gw_port, api_port, "fast", options, env, checkout=checkout)
            procs.append(gateway)
            wait_ready(gw_port)
            return asyncio.run(bench(streams, gw_port, gateway.pid, redis_url, gc_log))
        finally:
            for p in procs:
                p.terminate()
                p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument(
        "--checkout",
        action="append",
        type=Path,
        default=None,
        help="a tree whose gateway to measure (repeat it to compare; rounds alternate)",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--gc-trace",
        action="store_true",
        help="log the gateway's full garbage collections (bench/gc_trace) and report them",
    )
    parser.add_argument("--serve-api", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve(api_app(), args.serve_api)
        return 0
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]
    results: dict[Path, list[dict[str, float]]] = {c: [] for c in checkouts}
    for r in range(args.rounds):
        for checkout in checkouts:
            print(f"--- round {r + 1}, {checkout}")
            results[checkout].append(run_once(checkout, args.streams, args.gc_trace))
    if len(checkouts) > 1 or args.rounds > 1:
        print(f"\nmedians over {args.rounds} round(s), {args.streams} streams:")
        print("checkout | p50 s | p99 s | last s | gateway CPU µs/stream | B/stream")
        for checkout, runs in results.items():

            def med(key: str, runs: list[dict[str, float]] = runs) -> float:
                return statistics.median(run[key] for run in runs)

            print(
                f"{checkout} | {med('p50'):.3f} | {med('p99'):.3f} | {med('last'):.3f} | "
                f"{med('cpu_us'):.1f} | {med('memory_b'):,.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
