"""api_server read throughput and latency per endpoint (catalog, rankings, stats).

    .venv/bin/python bench/api_server_reads.py [--duration 5] [--connections 16]
        [--database-url mysql+pymysql://root@127.0.0.1:3306/bx_bench_api]

Migrates and seeds the database (default: a temporary SQLite file; a MariaDB URL must name
a database of your own), starts ``boxoffice serve api`` on a free port (as served: httptools,
one worker), and drives each endpoint with ``wrk`` in turn, printing req/s, p50 and p99 and
the server's CPU µs per request (``/proc/<pid>/stat``). Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import orjson
from benchkit import cpu_seconds, free_port


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return orjson.loads(resp.read())


def wrk(url: str, duration: int, connections: int) -> tuple[float, str, str]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return rps, p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("needs wrk (apt-get install -y wrk)")
        return 2
    tmp = tempfile.mkdtemp(prefix="bx-bench-api-")
    url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    # A local benchmark: the public default secrets are allowed.
    env |= {
        "BOXOFFICE_DATABASE_URL": url,
        "BOXOFFICE_LOG_LEVEL": "WARNING",
        "BOXOFFICE_ALLOW_INSECURE_DEFAULTS": "true",
    }
    cli = [sys.executable, "-m", "boxoffice.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, cwd=tmp, capture_output=True)
    subprocess.run([*cli, "seed", "--demo"], env=env, check=True, cwd=tmp, capture_output=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*cli, "serve", "api", "--port", str(port)], env=env, cwd=tmp, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                get_json(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        perf = get_json(base + "/api/performances?limit=1")["items"][0]["id"]  # type: ignore[index]
        session = get_json(f"{base}/api/performances/{perf}")["sessions"][0]["id"]  # type: ignore[index]
        paths = [
            "/healthz",
            "/api/venues",
            "/api/performances?limit=20",
            "/api/performances?q=live",
            f"/api/performances/{perf}",
            f"/api/sessions/{session}",
            f"/api/sessions/{session}/rankings?limit=100",
            f"/api/stats/sessions/{session}",
        ]
        backend = url.split(":", 1)[0]
        print(f"api_server, 1 worker, {backend}, wrk -c{args.connections} -d{args.duration}s")
        print(f"{'path':45} {'req/s':>8} {'p50':>9} {'p99':>9} {'CPU µs/req':>11}")
        for path in paths:
            wrk(base + path, 1, args.connections)  # warm-up
            cpu0 = cpu_seconds(server.pid)
            rps, p50, p99 = wrk(base + path, args.duration, args.connections)
            cpu_us = (cpu_seconds(server.pid) - cpu0) / (rps * args.duration) * 1e6
            print(f"{path:45} {rps:8.0f} {p50:>9} {p99:>9} {cpu_us:11.0f}")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
