"""Slow-client soak (issue 16): hundreds of sockets trickle request heads and bodies at one
byte per second into one gateway, while another client's ``GET /api/venues`` must keep
succeeding quickly, and no upstream connection may be held by a trickling client.

    .venv/bin/python bench/slow_clients.py [--sockets 500] [--duration 25] [--pool 64]
        [--redis-url URL] [--checkout DIR]

Starts a counting upstream (a bare asyncio server: it answers every complete request 200
with a small JSON page, and counts the connections on which a request body is still
arriving, i.e. held by a trickling client) and the gateway (``BOXOFFICE_EVENT_LOOP`` +
httptools, as ``boxoffice serve`` runs it; upstream pool ``--pool``; rate limiting off: one
load generator is one address) on free ports. Half of the sockets trickle a head (``GET``
with a header that never ends), half a body (``POST /api/admin/venues``, alternately chunked
and with a 100 kB ``Content-Length``); a socket the gateway closes (408) is replaced at
once, so ``--sockets`` trickle all the time. Meanwhile one client sends ``GET /api/venues``
back to back (10 ms apart) on a kept-alive connection. Prints its p50/p99/max and failures,
the 408s the trickling sockets got, and the peak of upstream connections held by trickling
requests (the goal: 0, and p99 under 100 ms). ``--checkout DIR`` runs the gateway of
another checkout (e.g. ``git worktree add /tmp/base <commit>``) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchkit import EVENT_LOOP, HTTP_PROTOCOL, ROOT, free_port, load_average, redis_for_bench

PAGE = json.dumps({"items": [], "total": 0, "offset": 0, "limit": 20}).encode()


def serve_counting(port: int) -> None:  # run in a subprocess
    """The counting upstream: answers complete requests; ``GET /_stats`` tells how many
    connections are inside an unfinished request body now (``held``), the peak of it, and
    how many trickled (``POST``) requests reached it at all."""
    stats = {"held": 0, "peak_held": 0, "posts": 0, "requests": 0}
    ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"

    class Counting(asyncio.Protocol):
        def __init__(self) -> None:
            self.buffer = b""
            self.holding = False
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def connection_lost(self, exc: Exception | None) -> None:
            self._hold(False)

        def _hold(self, holding: bool) -> None:
            if holding != self.holding:
                self.holding = holding
                stats["held"] += 1 if holding else -1
                stats["peak_held"] = max(stats["peak_held"], stats["held"])

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                head, _, rest = self.buffer.partition(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = 0
                chunked = False
                for line in lines[1:]:
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                    elif line.startswith(b"transfer-encoding:"):
                        chunked = True
                if chunked:
                    end = rest.find(b"0\r\n\r\n")
                    complete, consumed = end >= 0, end + 5
                else:
                    complete, consumed = len(rest) >= length, length
                if lines[0].startswith(b"post"):
                    self._hold(not complete)
                if not complete:
                    return
                if lines[0].startswith(b"post"):
                    stats["posts"] += 1
                stats["requests"] += 1
                self.buffer = rest[consumed:]
                body = json.dumps(stats).encode() if b" /_stats " in lines[0] else PAGE
                assert self.transport is not None
                self.transport.write(ok % len(body) + body)

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(Counting, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(run())


async def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: b\r\n\r\n".encode())
        return await asyncio.wait_for(_response(reader), timeout)
    finally:
        writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    return int(head[9:12]), await reader.readexactly(length)


def _wait_ready(port: int, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if asyncio.run(_get(port, path, 1.0))[0] == 200:
                return
        except (OSError, ValueError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing ready on port {port}")


class Tricklers:
    """``count`` sockets trickling a head or a body, one byte per second, replaced when
    the gateway closes them."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.refused: dict[str, int] = {}  # status line → how many
        self.opened = 0
        self.stopping = False

    async def run(self) -> None:
        await asyncio.gather(*(self._slot(i) for i in range(self.count)))

    async def _slot(self, i: int) -> None:
        await asyncio.sleep(i / self.count)  # spread the starts over a second
        kind = "head" if i % 2 == 0 else ("chunked" if i % 4 == 1 else "length")
        while not self.stopping:
            try:
                await self._one(kind)
            except OSError:
                await asyncio.sleep(0.1)

    async def _one(self, kind: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.opened += 1
        if kind == "head":
            start, drip = b"GET /api/venues HTTP/1.1\r\nhost: b\r\nx-slow: ", b"a"
        else:
            framing = (
                b"transfer-encoding: chunked\r\n\r\n"
                if kind == "chunked"
                else b"content-length: 100000\r\n\r\n"
            )
            start = b"POST /api/admin/venues HTTP/1.1\r\nhost: b\r\n" + framing
            drip = b"1\r\n{\r\n" if kind == "chunked" else b"{"
        answer = asyncio.ensure_future(reader.read(65536))
        try:
            writer.write(start)
            while not self.stopping and not answer.done():
                await asyncio.wait([answer], timeout=1.0)
                if not answer.done():
                    writer.write(drip)
            if answer.done() and not answer.cancelled() and answer.exception() is None:
                line = answer.result().split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
                self.refused[line] = self.refused.get(line, 0) + 1
        finally:
            answer.cancel()
            writer.close()


async def _measure(gw: int, up: int, tricklers: Tricklers, duration: float) -> dict[str, object]:
    """GET /api/venues back to back on one kept-alive connection while the tricklers run."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    peak_held = 0
    trickling = asyncio.ensure_future(tricklers.run())
    await asyncio.sleep(2.0)  # let every trickler connect
    reader, writer = await asyncio.open_connection("127.0.0.1", gw)
    request = b"GET /api/venues?offset=0&limit=20 HTTP/1.1\r\nhost: b\r\n\r\n"
    ends = time.monotonic() + duration
    next_sample = 0.0
    while time.monotonic() < ends:
        started = time.perf_counter()
        try:
            writer.write(request)
            status = str((await asyncio.wait_for(_response(reader), 5))[0])
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
            status = type(e).__name__
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", gw)
        latencies.append(time.perf_counter() - started)
        if status != "200":
            failures[status] = failures.get(status, 0) + 1
        if time.monotonic() > next_sample:
            next_sample = time.monotonic() + 0.5
            stats = json.loads((await _get(up, "/_stats"))[1])
            peak_held = max(peak_held, stats["peak_held"])
        await asyncio.sleep(0.01)
    writer.close()
    stats = json.loads((await _get(up, "/_stats"))[1])
    tricklers.stopping = True
    await asyncio.wait_for(trickling, 10)
    latencies.sort()
    return {
        "requests": len(latencies),
        "failures": failures,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "peak_upstream_held_by_tricklers": max(peak_held, stats["peak_held"]),
        "trickled_requests_reaching_upstream": stats["posts"],
        "trickling_sockets_opened": tricklers.opened,
        "trickling_sockets_answered": tricklers.refused,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-counting", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--duration", type=float, default=25.0)
    parser.add_argument("--pool", type=int, default=64, help="upstream connections")
    parser.add_argument("--redis-url", default=None, help="default: an embedded Valkey")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the gateway's code")
    args = parser.parse_args()
    if args.serve_counting:
        serve_counting(args.serve_counting)
        return 0

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    redis_url, embedded = redis_for_bench(args.redis_url)
    up_port, gw_port = free_port(), free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-counting", str(up_port)])
    checkout = args.checkout.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env.update(
        PYTHONPATH=str(checkout),
        BOXOFFICE_API_SERVER_URL=f"http://127.0.0.1:{up_port}",
        BOXOFFICE_TICKET_SERVER_URL=f"http://127.0.0.1:{up_port}",
        BOXOFFICE_REDIS_URL=redis_url,
        BOXOFFICE_RATE_LIMIT='{"enabled": false}',
        BOXOFFICE_UPSTREAM_MAX_CONNECTIONS=str(args.pool),
        BOXOFFICE_LOG_LEVEL="WARNING",
    )
    argv = [
        sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
        "--port", str(gw_port), "--loop", EVENT_LOOP, "--http", HTTP_PROTOCOL,
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    gateway = subprocess.Popen(argv, cwd=checkout, env=env, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(up_port, "/_stats")
        _wait_ready(gw_port, "/healthz")
        print(
            f"gateway of {checkout} (pool {args.pool}), {args.sockets} trickling sockets, "
            f"{args.duration:.0f} s; load average {load_average()}"
        )
        result = asyncio.run(
            _measure(gw_port, up_port, Tricklers(gw_port, args.sockets), args.duration)
        )
    finally:
        gateway.terminate()
        upstream.terminate()
        gateway.wait(10)
        upstream.wait(10)
        if embedded is not None:
            embedded.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
