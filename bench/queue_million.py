"""A waiting room of a million: one session, one Redis. Builds the line with pipelined joins,
then drives status polls at a steady rate and admission with slots recycling through the
gateway's real service layer (``gateway.queue.service``), and reports from Redis's own
counters (INFO cpu, commandstats, used_memory): Redis CPU per join and per status poll
(amortized: everything Redis did during the phase, divided by the polls), gateway CPU per
poll, Redis memory per waiter, admissions per second. The same run measures today's code
(``--baseline``, a git revision) side by side, on the same private redis-server.

    .venv/bin/python bench/queue_million.py [--waiters 1000000] [--poll-rate 10000]
        [--seconds 10] [--baseline 3a18b1c] [--redis-server redis-server]

A private redis-server on a free port is started (and stopped) for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SESSION = 990_019
SECRET = "bench-million-" * 4
BUILD_BATCH = 2000
TICK_S = 0.05


async def _redis_cpu(redis: Any) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def _commands_usec(redis: Any) -> float:
    # Scripts only: commandstats also counts each command a script calls, inside its time.
    stats = await redis.info("commandstats")
    return sum(float(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "eval"))


class Meter:
    """Redis CPU (its own counters), commands' time and this process's CPU over a phase."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def __aenter__(self) -> Meter:
        self.cpu0 = await _redis_cpu(self.redis)
        self.usec0 = await _commands_usec(self.redis)
        self.proc0 = time.process_time()
        self.wall0 = time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.proc = time.process_time() - self.proc0
        self.redis_cpu = await _redis_cpu(self.redis) - self.cpu0
        self.redis_usec = await _commands_usec(self.redis) - self.usec0


async def measure(url: str, waiters: int, poll_rate: int, seconds: float) -> dict[str, Any]:
    """One implementation's figures (whichever ``gateway`` is first on ``sys.path``)."""
    from gateway.queue import scripts as qs
    from gateway.queue import service as svc_module
    from gateway.queue.runtime import make_queue_redis
    from gateway.queue.schemas import QueuePolicy
    from gateway.queue.service import QueueService, member_of
    from svckit.redis_pipeline import PipelinedRedis

    new = hasattr(QueueService, "peek")
    redis = make_queue_redis(url, timeout_s=60)
    pipelined = PipelinedRedis(url, timeout_s=60)
    svc = QueueService(
        redis=redis,
        secret=SECRET,
        heartbeat_timeout_s=3600,
        admission_ttl_s=600,
        pipelined=pipelined,
    )
    await redis.flushall()
    ids = [f"u_{i:030x}" for i in range(waiters)]
    out: dict[str, Any] = {"impl": "new" if new else "old", "waiters": waiters}
    await svc.join(session_id=SESSION, user_id="warm-up")  # loads the script, records bms
    await svc.leave(session_id=SESSION, user_id="warm-up")
    mem0 = (await redis.info("memory"))["used_memory"]

    # 1. The line: pipelined joins (Redis CPU per join is what this measures). The new
    # code sends the joins a gateway receives in one event-loop turn in one call
    # (joins.lua, JOIN_BATCH of them); today's code one call each.
    batch = getattr(svc_module, "JOIN_BATCH", 1)
    async with Meter(redis) as m:
        for start in range(0, waiters, BUILD_BATCH):
            pipe = redis.pipeline(transaction=False)
            chunk = ids[start : start + BUILD_BATCH]
            if new:
                for at in range(0, len(chunk), batch):
                    members = [member_of(uid) for uid in chunk[at : at + batch]]
                    keys = [
                        *qs.script_keys(SESSION),
                        *(qs.member_keys(SESSION, mb)[-1] for mb in members),
                    ]
                    await svc.scripts.joins(keys=keys, args=[svc.bucket_ms, *members], client=pipe)
            else:
                for uid in chunk:
                    args: list[str | int] = [member_of(uid), svc.bucket_ms, "join"]
                    await svc.scripts.status(
                        keys=list(qs.script_keys(SESSION)), args=args, client=pipe
                    )
            await pipe.execute()
    mem1 = (await redis.info("memory"))["used_memory"]
    out["join_redis_cpu_us"] = m.redis_cpu / waiters * 1e6
    out["join_redis_cmd_us"] = m.redis_usec / waiters
    out["bytes_per_waiter"] = (mem1 - mem0) / waiters
    out["build_s"] = m.wall

    # 2. Status polls at a steady rate from random waiters, as the gateway answers them
    # (rendered to JSON); the new code's heartbeat flushes and snapshot reads included.
    policy = QueuePolicy(max_active=1000, admit_per_second=1000)
    rng = random.Random(7)
    line = {uid: i + 1 for i, uid in enumerate(ids)}  # join order = line number here
    if new:
        from shared.tokens import issue_queue_ticket, verify_queue_ticket

        sample = rng.sample(ids, min(waiters, 100_000))
        tickets = {
            u: issue_queue_ticket(secret=SECRET, user_id=u, session_id=SESSION, line=line[u])
            for u in sample
        }

        async def poll(uid: str) -> bytes:
            ln = verify_queue_ticket(tickets[uid], secret=SECRET, user_id=uid, session_id=SESSION)
            view = await svc.peek(session_id=SESSION, user_id=uid, line=ln)
            return (
                svc.render(view, session_id=SESSION, user_id=uid, policy=policy)
                .model_dump_json()
                .encode()
            )
    else:
        sample = rng.sample(ids, min(waiters, 100_000))

        async def poll(uid: str) -> bytes:
            view = await svc.status(session_id=SESSION, user_id=uid)
            return (
                svc.render(view, session_id=SESSION, user_id=uid, policy=policy)
                .model_dump_json()
                .encode()
            )

    step_s = 0.01
    per_step = max(1, round(poll_rate * step_s))
    polls = 0
    async with Meter(redis) as m:
        t_next = time.perf_counter()
        end = t_next + seconds
        while time.perf_counter() < end:
            await asyncio.gather(*(poll(rng.choice(sample)) for _ in range(per_step)))
            polls += per_step
            if new:
                await svc.flush_beats()
            t_next += step_s
            await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
        if new:
            await svc.flush_beats(force=True)
    out["polls"] = polls
    out["poll_rate"] = polls / m.wall
    out["poll_redis_cpu_us"] = m.redis_cpu / polls * 1e6
    out["poll_redis_cmd_us"] = m.redis_usec / polls
    out["poll_gateway_cpu_us"] = m.proc / polls * 1e6

    # 3. Admission at this size with slots recycling: every admitted user's reservation
    # completes at once (release), so the rate bound is what limits.
    admitted = 0
    next_user = 0
    ticks = 0
    async with Meter(redis) as m:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            result = await svc.tick(session_id=SESSION, policy=policy)
            ticks += 1
            done = ids[next_user : next_user + result.admitted]
            next_user += result.admitted
            admitted += result.admitted
            await asyncio.gather(*(svc.release(session_id=SESSION, user_id=u) for u in done))
            await asyncio.sleep(TICK_S)
    out["admissions_per_s"] = admitted / m.wall
    out["tick_redis_cpu_us"] = m.redis_cpu / ticks * 1e6
    out["admission_redis_cpu_us"] = m.redis_cpu / max(1, admitted) * 1e6
    out["used_memory_mb"] = (await redis.info("memory"))["used_memory"] / 1e6
    await pipelined.aclose()
    await redis.aclose()
    return out


def _child(tree: Path, url: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(tree),
        "--redis-url",
        url,
        "--waiters",
        str(args.waiters),
        "--poll-rate",
        str(args.poll_rate),
        "--seconds",
        str(args.seconds),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tree)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


ROWS = [
    ("Redis CPU per join (µs, INFO cpu)", "join_redis_cpu_us"),
    ("  of which in scripts (µs, commandstats)", "join_redis_cmd_us"),
    ("Redis memory per waiter (B, used_memory)", "bytes_per_waiter"),
    ("status polls per second (steady)", "poll_rate"),
    ("Redis CPU per poll, amortized (µs)", "poll_redis_cpu_us"),
    ("  of which in scripts (µs)", "poll_redis_cmd_us"),
    ("gateway CPU per poll (µs)", "poll_gateway_cpu_us"),
    ("admissions per second (slots recycling)", "admissions_per_s"),
    ("Redis CPU per admission tick (µs)", "tick_redis_cpu_us"),
    ("Redis CPU per admission (µs)", "admission_redis_cpu_us"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", type=int, default=1_000_000)
    parser.add_argument("--poll-rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baseline", default="3a18b1c", help="git revision of today's code")
    parser.add_argument("--redis-server", default="redis-server")
    parser.add_argument("--redis-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one implementation, in its own tree; prints one JSON line
        sys.path.insert(0, args.child)
        result = asyncio.run(measure(args.redis_url, args.waiters, args.poll_rate, args.seconds))
        print(json.dumps(result))
        return 0
    # Imported here: a child must import every project module from its own tree.
    from benchkit import load_average, private_redis_server

    old_tree = Path(tempfile.mkdtemp(prefix="bx-queue-old-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        version = subprocess.run(
            [args.redis_server, "--version"], capture_output=True, text=True
        ).stdout.split()[2]
        print(
            f"redis-server {version}; {args.waiters} waiters; polls at {args.poll_rate}/s "
            f"for {args.seconds:.0f} s; baseline {args.baseline}; load {load_average()}"
        )
        with private_redis_server(args.redis_server) as url:
            results = [_child(ROOT, url, args), _child(old_tree, url, args)]
    finally:
        shutil.rmtree(old_tree, ignore_errors=True)
    new, old = results
    print(f"{'':45} {'this code':>12} {'baseline':>12}")
    for label, key in ROWS:
        print(f"{label:45} {new[key]:12.2f} {old[key]:12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
