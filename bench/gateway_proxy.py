"""Gateway proxy overhead: direct upstream vs through the gateway, side by side.

    .venv/bin/python bench/gateway_proxy.py [--duration 10] [--connections 32] [--rounds 5]
        [--transports fast,httpx,aiohttp] [--rate-limit] [--redis-url redis://127.0.0.1:6379/2]

Starts a tiny FastAPI upstream (a catalog-like JSON GET) and the gateway with uvicorn
(``BOXOFFICE_EVENT_LOOP`` + httptools, as ``boxoffice serve`` runs them) on free ports,
drives load with ``wrk`` (``apt-get install -y wrk``; falls back to a small aiohttp load
generator), and prints:
direct req/s, gateway req/s, the ratio, CPU µs per request of each process (from
``/proc/<pid>/stat`` utime+stime deltas), and the p50 latency the gateway adds at one
connection (direct and gateway runs alternating, the median of the differences). Goals
(issues 3 and 8): gateway ≥ 45% of direct req/s; gateway CPU per request ≤ 2× the
upstream's in the same run; added p50 at one connection ≤ 0.4 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    EVENT_LOOP,
    HTTP_PROTOCOL,
    LIMITER_ADMITS_ALL,
    ROOT,
    cpu_seconds,
    free_port,
    load_average,
    serve,
)

PATH = "/api/venues?offset=0&limit=20"


# The catalog page both stand-in upstreams answer.
VENUES: dict[str, Any] = {
    "items": [
        {"id": i, "name": f"Hall {i}", "address": "424 Olympic-ro, Seoul", "seat_count": 500}
        for i in range(1, 4)
    ],
    "total": 3,
    "offset": 0,
    "limit": 20,
}


def upstream_app() -> Any:  # run in a subprocess
    """The stand-in api_server: one small JSON GET, like a catalog page."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/venues")
    async def list_venues(offset: int = 0, limit: int = 20) -> dict[str, object]:
        return VENUES

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_canned(port: int) -> None:  # run in a subprocess
    """A stand-in upstream that costs next to nothing: a bare asyncio protocol answering
    every request on a keep-alive connection with the same canned JSON response (GETs
    without a body only). For measuring the gateway where the upstream must not be what
    limits it (bench/ratelimit.py, side by side)."""
    body = json.dumps(VENUES).encode()
    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (len(body), body)
    )

    class Canned(asyncio.Protocol):
        def __init__(self) -> None:
            self.buffer = b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            *heads, self.buffer = self.buffer.split(b"\r\n\r\n")
            if heads and self.transport is not None:
                self.transport.write(response * len(heads))

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(run())


def start_canned_upstream(port: int) -> subprocess.Popen[bytes]:
    """:func:`serve_canned` in a subprocess, once it accepts connections."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve-canned", str(port)], cwd=ROOT)
    wait_ready(port, PATH)
    return proc


def wait_ready(port: int, path: str = "/healthz", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing ready on port {port}")


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, __file__, "--serve-upstream", str(port)]
    proc = subprocess.Popen(argv, cwd=ROOT)
    wait_ready(port)
    return proc


def start_gateway(
    port: int,
    upstream_port: int,
    transport: str,
    args: argparse.Namespace,
    extra_env: dict[str, str] | None = None,
    checkout: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """A gateway process; ``checkout`` is whose code it runs (another checkout, e.g. a git
    worktree of an earlier commit, for a before/after comparison)."""
    env = dict(os.environ, **(extra_env or {}))
    env.update(
        BOXOFFICE_API_SERVER_URL=f"http://127.0.0.1:{upstream_port}",
        BOXOFFICE_TICKET_SERVER_URL=f"http://127.0.0.1:{upstream_port}",
        BOXOFFICE_REDIS_URL=args.redis_url,
        BOXOFFICE_LOG_LEVEL=args.log_level,
    )
    if not args.rate_limit:
        # This benchmark measures the proxy; bench/ratelimit measures the limiter's cost.
        env["BOXOFFICE_RATE_LIMIT"] = '{"enabled": false}'
    else:
        env.setdefault("BOXOFFICE_RATE_LIMIT", LIMITER_ADMITS_ALL)
    if transport == "aiohttp":
        # Not a setting of the gateway: bench/aiohttp_gateway.py injects that transport.
        factory = ["--app-dir", str(ROOT / "bench"), "aiohttp_gateway:create_app"]
    else:
        env["BOXOFFICE_UPSTREAM_TRANSPORT"] = transport
        factory = ["gateway.app:create_app"]
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        *factory,
        "--factory",
        "--port",
        str(port),
        "--loop",
        EVENT_LOOP,
        "--http",
        "httptools" if getattr(args, "stock_http", False) else HTTP_PROTOCOL,
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "16384",  # bench/queue_sse.py opens thousands of streams at once
    ]
    proc = subprocess.Popen(argv, cwd=checkout, env=env, stderr=subprocess.DEVNULL)
    wait_ready(port)
    return proc


def run_wrk(url: str, connections: int, duration: float) -> tuple[float, int, float]:
    """(req/s, total requests, p50 ms) from wrk."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(duration)}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50m = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p50 = float(p50m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50m.group(2)]  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  !! {errors.group(1)} non-2xx responses from {url}")
    return rps, total, p50


async def _py_load(url: str, connections: int, duration: float) -> tuple[float, int, float]:
    import aiohttp

    latencies: list[float] = []
    count = 0
    stop = time.monotonic() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal count
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            async with session.get(url) as r:
                await r.read()
            latencies.append(time.perf_counter() - t0)
            count += 1

    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.monotonic() - t0
    latencies.sort()
    return count / elapsed, count, latencies[len(latencies) // 2] * 1000


def load(url: str, connections: int, duration: float) -> tuple[float, int, float]:
    if shutil.which("wrk"):
        return run_wrk(url, connections, duration)
    return asyncio.run(_py_load(url, connections, duration))


def measure(
    url: str, pids: list[int], connections: int, duration: float
) -> tuple[float, float, list[float]]:
    before = [cpu_seconds(p) for p in pids]
    rps, total, p50 = load(url, connections, duration)
    after = [cpu_seconds(p) for p in pids]
    cpu_us = [(a - b) * 1e6 / max(total, 1) for a, b in zip(after, before, strict=True)]
    return rps, p50, cpu_us


def added_latency(direct_url: str, gw_url: str, rounds: int) -> tuple[float, float, list[float]]:
    """Median p50 at one connection, direct and through the gateway, and each round's
    difference. Direct and gateway runs alternate (2 s each): the machine's speed
    drifts by more than the difference being measured, so both sides of a difference are
    measured a moment apart."""
    direct: list[float] = []
    through: list[float] = []
    for _ in range(rounds):
        direct.append(load(direct_url, 1, 2)[2])
        through.append(load(gw_url, 1, 2)[2])
    added = [g - d for d, g in zip(direct, through, strict=True)]
    return statistics.median(direct), statistics.median(through), added


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-upstream", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve-canned", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--transports", default="fast")
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating one-connection pairs (added p50)"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--log-level", default="WARNING", help="the gateway's log level")
    parser.add_argument(
        "--stock-http",
        action="store_true",
        help="serve the gateway with uvicorn's own httptools protocol (two writes a response)",
    )
    parser.add_argument(
        "--rate-limit",
        action="store_true",
        help="keep the gateway's rate limiting on (admitting every request, unless "
        "BOXOFFICE_RATE_LIMIT says otherwise)",
    )
    args = parser.parse_args()

    if args.serve_upstream:
        serve(upstream_app(), args.serve_upstream)
        return 0
    if args.serve_canned:
        serve_canned(args.serve_canned)
        return 0

    print(f"load average before: {load_average()}; cores: {os.cpu_count()}")
    print(
        f"load generator: {'wrk' if shutil.which('wrk') else 'python/aiohttp'}, "
        f"{args.connections} connections, {args.duration:.0f}s per run"
    )
    up_port = free_port()
    upstream = start_upstream(up_port)
    procs = [upstream]
    try:
        direct_url = f"http://127.0.0.1:{up_port}{PATH}"
        load(direct_url, args.connections, 2)  # warm-up
        d_rps, _, d_cpu = measure(direct_url, [upstream.pid], args.connections, args.duration)
        print(f"direct upstream: {d_rps:9.0f} req/s  upstream CPU {d_cpu[0]:6.0f} µs/req")
        for transport in args.transports.split(","):
            gw_port = free_port()
            gateway = start_gateway(gw_port, up_port, transport, args)
            procs.append(gateway)
            gw_url = f"http://127.0.0.1:{gw_port}{PATH}"
            load(gw_url, args.connections, 2)  # warm-up (pool, caches)
            g_rps, _, cpus = measure(
                gw_url, [gateway.pid, upstream.pid], args.connections, args.duration
            )
            d_p50, g_p50, added = added_latency(direct_url, gw_url, args.rounds)
            gw_cpu, up_cpu = cpus
            print(
                f"gateway [{transport:5s}]: {g_rps:9.0f} req/s  = {g_rps / d_rps:6.1%} of direct"
                f"  | CPU gateway {gw_cpu:6.0f} µs/req, upstream {up_cpu:6.0f} µs/req"
                f" (ratio {gw_cpu / up_cpu:4.2f}x)"
            )
            print(
                f"  p50 at one connection: direct {d_p50:.3f} ms, through the gateway "
                f"{g_p50:.3f} ms  | added p50@1conn {statistics.median(added):+.3f} ms"
                f" (median of alternating pairs: {' '.join(f'{a:+.3f}' for a in added)})"
            )
            gateway.terminate()
            gateway.wait(10)
            procs.remove(gateway)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
