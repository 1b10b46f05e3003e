"""Micro-cached hot GET through the gateway vs the direct upstream (issue 8).

    .venv/bin/python bench/micro_cache.py [--duration 10] [--connections 64] [--ttl 1]
        [--rate-limit] [--redis-url redis://127.0.0.1:6379/2]

Starts a counting upstream (a catalog-like JSON GET, like bench/gateway_proxy.py's) and
gateways with uvicorn on free ports, drives load with ``wrk`` (or aiohttp), and prints, in the
same run: direct req/s; gateway req/s without the cache; gateway req/s with
``BOXOFFICE_MICRO_CACHE_TTL_S={"browse": ttl}`` and its ratio to direct; and how many requests
reached the upstream per TTL while cached (goal: 1 per key per TTL). Goal: cached ≥ 1.5× the
direct upstream's req/s. Rate limiting is off unless ``--rate-limit`` (then on, with a browse
policy too generous to refuse anything, so its Redis round trip is paid on every request).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

import gateway_proxy as gp  # the stand-in upstream, the gateway process, the load generator
from benchkit import LIMITER_ADMITS_ALL, free_port, serve

PATH = gp.PATH


def counting_upstream() -> Any:  # run in a subprocess
    """bench/gateway_proxy.py's stand-in api_server, counting the requests that reach it."""
    from starlette.types import Receive, Scope, Send

    inner = gp.upstream_app()
    seen = {"n": 0}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/count":
            body = json.dumps(seen).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        # Only the benchmarked path: a gateway may ask api_server other things (the queue
        # looks up facts of sessions it finds in Redis).
        if scope["type"] == "http" and scope["path"] == PATH.split("?", 1)[0]:
            seen["n"] += 1
        await inner(scope, receive, send)

    return app


def upstream_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as r:
        return int(json.load(r)["n"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-upstream", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ttl", type=float, default=1.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--rate-limit", action="store_true")
    args = parser.parse_args()
    args.transports = "fast"

    if args.serve_upstream:
        serve(counting_upstream(), args.serve_upstream)
        return 0

    if args.rate_limit:
        os.environ["BOXOFFICE_RATE_LIMIT"] = LIMITER_ADMITS_ALL
    print(f"cores: {os.cpu_count()}; {args.connections} connections, {args.duration:.0f}s per run")
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)])
    gp.wait_ready(up_port)
    procs = [upstream]
    try:
        direct = f"http://127.0.0.1:{up_port}{PATH}"
        gp.load(direct, args.connections, 2)
        d_rps, _, d_cpu = gp.measure(direct, [upstream.pid], args.connections, args.duration)
        print(f"direct upstream:       {d_rps:9.0f} req/s  (upstream CPU {d_cpu[0]:5.0f} µs/req)")
        for label, cache in (("gateway, no cache", None), ("gateway, micro-cache", args.ttl)):
            if cache is None:
                os.environ.pop("BOXOFFICE_MICRO_CACHE_TTL_S", None)
            else:
                os.environ["BOXOFFICE_MICRO_CACHE_TTL_S"] = json.dumps({"browse": cache})
            port = free_port()
            gateway = gp.start_gateway(port, up_port, "fast", args)
            procs.append(gateway)
            url = f"http://127.0.0.1:{port}{PATH}"
            gp.load(url, args.connections, 2)
            before, t0 = upstream_count(up_port), time.monotonic()
            rps, _, cpus = gp.measure(url, [gateway.pid], args.connections, args.duration)
            reached, elapsed = upstream_count(up_port) - before, time.monotonic() - t0
            line = (
                f"{label + ':':22s} {rps:9.0f} req/s  = {rps / d_rps:5.2f}x direct"
                f"  (gateway CPU {cpus[0]:5.0f} µs/req)"
            )
            if cache is not None:
                line += (
                    f"  upstream saw {reached} requests in {elapsed:.1f}s"
                    f" = {reached / (elapsed / cache):.2f} per key per TTL"
                )
            print(line)
            gateway.terminate()
            gateway.wait(10)
            procs.remove(gateway)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
