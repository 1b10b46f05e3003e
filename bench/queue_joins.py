"""Waiting-room benchmark: join N users to one session through the queue's service layer
(the Lua scripts on real Redis), then status calls read from Redis (the authoritative path;
a gateway answers most polls from memory: bench/queue_million.py), then one admission tick;
reports joins/s, status calls/s, latency, Redis server time per call, and Redis memory per
waiter (goal < 200 bytes).

    .venv/bin/python bench/queue_joins.py [--users 100000] [--concurrency 64]
        [--scale 1000000]   # then grow the line (pipelined) and re-measure status cost
        [--redis-url redis://127.0.0.1:6379/5]   # default: a private embedded Valkey

Only the bench session's keys are touched (and deleted afterwards); nothing is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis

from gateway.queue.runtime import make_queue_redis
from gateway.queue.schemas import QueuePolicy
from gateway.queue.scripts import member_keys, script_keys
from gateway.queue.service import QueueService
from shared.config import CommonSettings
from shared.tokens import new_user_id

SESSION = 990_001
EVENT_LOOP = CommonSettings().event_loop


async def evalsha_stats(redis: aioredis.Redis) -> tuple[int, float]:
    """(calls, total µs) of EVALSHA so far on the server."""
    info = await redis.info("commandstats")
    stat = info.get("cmdstat_evalsha", {})
    return int(stat.get("calls", 0)), float(stat.get("usec", 0))


async def run_phase(
    name: str,
    n: int,
    concurrency: int,
    call: Callable[[int], Awaitable[None]],
    redis: aioredis.Redis,
) -> float:
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    calls0, usec0 = await evalsha_stats(redis)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    calls1, usec1 = await evalsha_stats(redis)
    latencies.sort()
    server_us = (usec1 - usec0) / max(1, calls1 - calls0)
    print(
        f"{name:>7}: {n:>8} in {elapsed:6.2f} s = {n / elapsed:8.0f}/s  "
        f"p50 {latencies[len(latencies) // 2] * 1000:5.2f} ms  "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:5.2f} ms  "
        f"Redis {server_us:5.1f} µs/call"
    )
    return n / elapsed


async def bench(url: str, users: int, concurrency: int, scale: int) -> None:
    redis = make_queue_redis(url, timeout_s=10)
    svc = QueueService(
        redis=redis, secret="bench-" * 8, heartbeat_timeout_s=600, admission_ttl_s=600
    )
    ks = script_keys(SESSION)
    await redis.delete(*ks)
    ids = [new_user_id() for _ in range(users)]
    info = await redis.info("server")
    print(
        f"server: {info.get('redis_version')} ({info.get('server_name', 'redis')}), "
        f"users {users}, concurrency {concurrency}, cores {os.cpu_count()}"
    )
    await svc.join(session_id=SESSION, user_id="warm-up")  # loads the script
    await svc.leave(session_id=SESSION, user_id="warm-up")
    mem0 = (await redis.info("memory"))["used_memory"]

    async def join(i: int) -> None:
        await svc.join(session_id=SESSION, user_id=ids[i])

    async def status(i: int) -> None:
        await svc.status(session_id=SESSION, user_id=ids[random.randrange(users)])

    await run_phase("join", users, concurrency, join, redis)
    mem1 = (await redis.info("memory"))["used_memory"]
    await run_phase("status", users, concurrency, status, redis)

    # Memory: the used_memory delta, and MEMORY USAGE of the session's queue keys.
    per_key = {}
    for k in ks:
        usage = await redis.memory_usage(k, samples=0)
        if usage:
            per_key[k.rsplit(":", 1)[-1]] = usage
    total_keys = sum(per_key.values())
    print(
        f" memory: used_memory delta {(mem1 - mem0) / users:6.1f} B/waiter; "
        f"MEMORY USAGE of queue keys {total_keys / users:6.1f} B/waiter "
        f"({', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in per_key.items())})"
    )

    # Admission ticks at this size: a typical one (rate 100/s: ≤ 5 admissions, sweeps 200
    # waiters) and the heaviest one (MAX_ADMIT_PER_TICK admissions + sweep).
    for rate in (100, 1_000_000):
        policy = QueuePolicy(max_active=10_000_000, admit_per_second=rate)
        ticks, admitted = [], 0
        for _ in range(20):
            calls0, usec0 = await evalsha_stats(redis)
            result = await svc.tick(session_id=SESSION, policy=policy)
            calls1, usec1 = await evalsha_stats(redis)
            admitted += result.admitted
            ticks.append((usec1 - usec0) / max(1, calls1 - calls0))
            await asyncio.sleep(0.05)
        print(
            f"   tick: rate {rate}/s: median Redis {statistics.median(ticks) / 1000:.2f} ms "
            f"per tick ({admitted / 20:.0f} admitted per tick, 200 waiters swept)"
        )
    if scale > users:
        await scale_check(svc, redis, users, scale)
    await redis.delete(*ks)
    await redis.aclose()


async def scale_check(svc: QueueService, redis: aioredis.Redis, have: int, scale: int) -> None:
    """Grow the line to ``scale`` waiters with pipelined joins (Redis time per join is what
    matters here), then compare Redis time per status call and bytes per waiter: O(log n)
    means a 10x longer line costs only a few more µs."""
    ks = list(script_keys(SESSION))
    calls0, usec0 = await evalsha_stats(redis)
    batch = 2000
    t0 = time.perf_counter()
    for start in range(have, scale, batch):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(scale, start + batch)):
            member = f"s{i:011d}"
            await svc.scripts.status(
                keys=list(member_keys(SESSION, member)),
                args=[member, svc.bucket_ms, "join", 0, 0, member, "00"],
                client=pipe,
            )
        await pipe.execute()
    calls1, usec1 = await evalsha_stats(redis)
    print(
        f"  scale: grew to {scale} waiters in {time.perf_counter() - t0:.1f} s "
        f"(pipelined), Redis {(usec1 - usec0) / max(1, calls1 - calls0):5.1f} µs/join"
    )
    sample = [f"s{random.randrange(have, scale):011d}" for _ in range(5000)]
    calls0, usec0 = await evalsha_stats(redis)
    pipe = redis.pipeline(transaction=False)
    for member in sample:
        await svc.scripts.status(
            keys=list(member_keys(SESSION, member)),
            args=[member, svc.bucket_ms, "beat", 0, 0, "", ""],
            client=pipe,
        )
    await pipe.execute()
    calls1, usec1 = await evalsha_stats(redis)
    usage = sum([await redis.memory_usage(k, samples=0) or 0 for k in ks])
    print(
        f"         status at {scale} waiters: Redis "
        f"{(usec1 - usec0) / max(1, calls1 - calls0):5.1f} µs/call; "
        f"MEMORY USAGE of queue keys {usage / scale:6.1f} B/waiter"
    )


def _loop_policy() -> None:
    if EVENT_LOOP == "uvloop":  # the services' event loop (BOXOFFICE_EVENT_LOOP)
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--scale", type=int, default=0, help="then grow the line to this many (pipelined)"
    )
    parser.add_argument("--redis-url", default=None, help="default: a private embedded Valkey")
    args = parser.parse_args(argv)
    _loop_policy()
    if args.redis_url:
        asyncio.run(bench(args.redis_url, args.users, args.concurrency, args.scale))
        return 0
    from tests.fixtures.services import EmbeddedRedis

    with EmbeddedRedis() as server:
        asyncio.run(bench(server.url, args.users, args.concurrency, args.scale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
