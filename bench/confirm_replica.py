"""What waiting for a replica costs a confirm: ``bench/booking.py`` against a private
``redis-server`` without replicas and one with a replica (confirm then issues ``WAIT 1``),
alternating, in one run.

    .venv/bin/python bench/confirm_replica.py [--rounds 2] [--duration 8] [--clients 32]

Prints booking.py's JSON lines, each prefixed with the round and the setup.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from benchkit import ROOT

from tests.fixtures.redis_server import RedisProcess, wait_replica_in_sync


def main() -> None:
    """Run the rounds."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    p.add_argument("--clients", type=int, default=32)
    args = p.parse_args()
    with RedisProcess() as alone, RedisProcess() as master:
        with RedisProcess("--replicaof", "127.0.0.1", str(master.port)):
            wait_replica_in_sync(master)
            for n in range(args.rounds):
                for name, server in (("no replica", alone), ("1 replica, WAIT 1", master)):
                    out = subprocess.run(
                        [
                            sys.executable,
                            str(ROOT / "bench" / "booking.py"),
                            f"--duration={args.duration}",
                            f"--clients={args.clients}",
                            f"--redis-url={server.url}",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    for line in out.stdout.splitlines():
                        if line.startswith("{"):
                            print(f"round {n + 1}, {name}: {line}", flush=True)


if __name__ == "__main__":
    main()
