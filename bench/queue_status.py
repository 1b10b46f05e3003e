"""Gateway CPU per queue status call (``GET /api/queue/{id}``, the waiter's heartbeat),
for one or more checkouts side by side.

    .venv/bin/python bench/queue_status.py [--duration 8] [--rounds 3] [--connections 32]
        [--checkout /tmp/base --checkout .] [--redis-url redis://127.0.0.1:6379/<yours>]

Each checkout's gateway runs from its own tree (``PYTHONPATH``), in front of one stand-in
api_server (session facts) and one Redis; one user joins once, then ``wrk`` polls its
status. Rounds alternate between the checkouts; printed per round: status calls/s and the
gateway's CPU µs per call (``/proc/<pid>/stat``), then the median per checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchkit import EVENT_LOOP, HTTP_PROTOCOL, ROOT, cpu_seconds, free_port, redis_for_bench

SESSION = 1
SECRET = "bench-queue-status-secret-0123456789abcdef0123"


def serve_facts(port: int) -> None:  # run in a subprocess
    """A stand-in api_server answering the session facts the queue reads."""
    from datetime import UTC, datetime, timedelta

    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    opens = datetime.now(UTC) - timedelta(hours=1)

    @app.get("/api/sessions/{session_id}")
    async def session(session_id: int) -> dict[str, object]:
        return {
            "id": session_id,
            "performance_id": 1,
            "starts_at": (opens + timedelta(days=1)).isoformat(),
            "booking_opens_at": opens.isoformat(),
            "seat_count": 100,
            "sold_count": 0,
            "grades": [],
            "queue": {"max_active": 1000, "admit_per_second": 1000},
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, port=port, log_level="warning", access_log=False)


def wait_ready(port: int, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing ready on port {port}")


def start_gateway(
    checkout: Path, port: int, api_port: int, redis_url: str
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(checkout),
        BOXOFFICE_API_SERVER_URL=f"http://127.0.0.1:{api_port}",
        BOXOFFICE_TICKET_SERVER_URL=f"http://127.0.0.1:{api_port}",
        BOXOFFICE_REDIS_URL=redis_url,
        BOXOFFICE_SECRET_KEY=SECRET,
        BOXOFFICE_LOG_LEVEL="WARNING",
        BOXOFFICE_RATE_LIMIT='{"enabled": false}',
    )
    argv = [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory"]
    argv += ["--port", str(port), "--loop", EVENT_LOOP, "--http", HTTP_PROTOCOL]
    argv += ["--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(argv, cwd=checkout, env=env, stderr=subprocess.DEVNULL)
    wait_ready(port)
    return proc


def join(port: int) -> str:
    """A new user's token, after it joined the session's queue."""
    import httpx

    from shared.tokens import issue_access_token, new_user_id

    token = issue_access_token(secret=SECRET, user_id=new_user_id(), nickname="b", ttl_s=3600)
    r = httpx.post(
        f"http://127.0.0.1:{port}/api/queue/{SESSION}/join",
        headers={"Authorization": f"Bearer {token}"},
    )
    r.raise_for_status()
    return token


def poll(port: int, pid: int, token: str, args: argparse.Namespace) -> tuple[float, float]:
    """(status calls/s, gateway CPU µs per call) over one wrk run."""
    before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{args.connections}", f"-d{int(args.duration)}s"]
        + ["-H", f"Authorization: Bearer {token}"]
        + [f"http://127.0.0.1:{port}/api/queue/{SESSION}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - before
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        print("  !! non-2xx answers:", re.search(r"Non-2xx.*", out).group(0))  # type: ignore[union-attr]
    return rps, cpu / total * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-facts", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--checkout", action="append", type=Path, default=None)
    parser.add_argument("--redis-url", default=None, help="default: a private embedded server")
    args = parser.parse_args()
    if args.serve_facts is not None:
        serve_facts(args.serve_facts)
        return 0
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]
    redis_url, embedded = redis_for_bench(args.redis_url)
    api_port = free_port()
    api = subprocess.Popen([sys.executable, __file__, "--serve-facts", str(api_port)], cwd=ROOT)
    gateways: list[tuple[Path, int, subprocess.Popen[bytes], str]] = []
    results: dict[str, list[tuple[float, float]]] = {str(c): [] for c in checkouts}
    try:
        wait_ready(api_port)
        for checkout in checkouts:
            port = free_port()
            proc = start_gateway(checkout, port, api_port, redis_url)
            gateways.append((checkout, port, proc, join(port)))
        for r in range(args.rounds):
            for checkout, port, proc, token in gateways:
                rps, us = poll(port, proc.pid, token, args)
                results[str(checkout)].append((rps, us))
                print(f"round {r + 1} {checkout}: {rps:,.0f} status calls/s, {us:.1f} µs CPU/call")
        summary = {
            c: {
                "rps_median": statistics.median(x[0] for x in v),
                "cpu_us_median": statistics.median(x[1] for x in v),
                "cpu_us_best": min(x[1] for x in v),
            }
            for c, v in results.items()
        }
        print(json.dumps(summary, indent=2))
    finally:
        for *_, proc, _ in gateways:
            proc.terminate()
            proc.wait()
        api.terminate()
        api.wait()
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
