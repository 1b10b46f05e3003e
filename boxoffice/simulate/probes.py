"""Looks at the system under test while the crowd runs: the Redis probe (command counts,
the worker group's lag), the gateway's queue gauges, and the sampler that records the
timeline. CPU and load readings are in ``readings.py``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from boxoffice.simulate.client import Recorder
from boxoffice.simulate.user import Person, Simulation
from shared.keys import WORKER_GROUP, events_stream

SAMPLE_EVERY_S = 0.5
STOP_TIMEOUT_S = 5.0


def shard_shares(before: dict[str, int], after: dict[str, int]) -> dict[str, dict[str, float]]:
    """Commands each shard ran between two counts, and its share of the total."""
    delta = {k: max(0, n - before.get(k, 0)) for k, n in after.items()}
    total = sum(delta.values()) or 1
    return {k: {"commands": n, "share": round(n / total, 3)} for k, n in sorted(delta.items())}


class RedisProbe:
    """Optional look at the Redis under test: command counts and the worker group's lag.
    Counts its own commands so they can be left out of the per-request figure."""

    def __init__(self, url: str | None) -> None:
        self.client: Any = None
        self.own_commands = 0
        # Commands per shard (master address) at the last command_counts(), on a cluster.
        self.per_shard: dict[str, int] = {}
        if url:
            from svckit.redis_client import make_async_redis, resolve

            self.client = make_async_redis(resolve(url, timeout_s=5.0), decode_responses=True)

    async def command_counts(self) -> dict[str, int] | None:
        """``calls`` per command from INFO commandstats (summed over a cluster's masters,
        whose own totals go to :attr:`per_shard`)."""
        if self.client is None:
            return None
        try:
            infos = await self._commandstats()
        except Exception:  # an optional figure: a failing probe must not end the run
            return None
        total: dict[str, int] = {}
        self.per_shard = {}
        for shard, info in infos.items():
            self.own_commands += 1
            calls = {
                name.removeprefix("cmdstat_"): int(v.get("calls", 0))
                for name, v in info.items()
                if isinstance(v, dict)
            }
            self.per_shard[shard] = sum(calls.values())
            for name, n in calls.items():
                total[name] = total.get(name, 0) + n
        return total

    async def _commandstats(self) -> dict[str, dict[str, Any]]:
        from redis.asyncio.cluster import RedisCluster

        if not isinstance(self.client, RedisCluster):
            return {"single": await self.client.info("commandstats")}
        out = {}
        for node in self.client.get_primaries():
            out[node.name] = await self.client.info("commandstats", target_nodes=node)
        return out

    async def stream_lag(self, session_id: int) -> int | None:
        """Entries of the session's stream the worker group has not yet acknowledged."""
        if self.client is None:
            return None
        try:
            groups = await self.client.xinfo_groups(events_stream(session_id))
        except Exception:  # the stream may not exist yet
            self.own_commands += 1
            return None
        self.own_commands += 1
        for g in groups:
            if g.get("name") == WORKER_GROUP:
                lag = g.get("lag")
                pending = int(g.get("pending") or 0)
                return pending + int(lag) if lag is not None else pending
        return None

    async def close(self) -> None:
        """Close the connection."""
        if self.client is not None:
            await self.client.aclose()


async def sample_timeline(
    sim: Simulation,
    people: list[Person],
    probe: RedisProbe,
    stats_url: str,
    recorder: Recorder,
    timeline: list[dict[str, Any]],
) -> None:
    """Every ``SAMPLE_EVERY_S``: the crowd's counters plus the latest read-side and stream
    figures. Those two are fetched by their own loops, so a slow answer under load delays
    only its own figure, never the sampling cadence."""
    sid = sim.stage.session_id
    latest: dict[str, int | None] = {
        "mysql": 0,
        "stream_lag": None,
        "server_waiting": None,
        "server_admitted": None,
    }

    async def poll_stats() -> None:
        while True:
            r = await sim.client.call("stats(sampler)", "GET", stats_url)
            if r is not None and r.status_code == 200:
                latest["mysql"] = int(r.json()["reservation_count"])
            await asyncio.sleep(1.0)

    async def poll_stream() -> None:
        while True:
            latest["stream_lag"] = await probe.stream_lag(sid)
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def poll_queue_metrics() -> None:
        # The gateway's own view of the queue (Prometheus gauges of gateway/queue).
        url = stats_url.split("/api/", 1)[0] + "/metrics"
        while True:
            r = await sim.client.call("metrics(sampler)", "GET", url)
            if r is not None and r.status_code == 200:
                latest.update(queue_gauges(r.text, sid))
            await asyncio.sleep(1.0)

    pollers = [
        asyncio.create_task(poll_stats()),
        asyncio.create_task(poll_stream()),
        asyncio.create_task(poll_queue_metrics()),
    ]
    try:
        lag_ms = 0.0
        while True:
            admitted = sum(1 for p in people if p.admitted_received is not None)
            mysql = latest["mysql"] or 0
            timeline.append(
                {
                    "t": round(time.time() - recorder.t0, 3),
                    "waiting": sim.crowd.waiting,
                    "active": sim.crowd.active,
                    "finished": sim.crowd.finished,
                    "admitted_total": admitted,
                    "confirmed": sim.crowd.confirmed,
                    "sold_seats": sim.crowd.sold_seats,
                    "mysql_reservations": mysql,
                    "read_lag": max(0, sim.crowd.confirmed - mysql),
                    "stream_lag": latest["stream_lag"],
                    "server_waiting": latest["server_waiting"],
                    "server_admitted": latest["server_admitted"],
                    # How late this sample woke up: the simulator's own event-loop delay,
                    # which every latency it measures includes.
                    "sim_loop_lag_ms": round(lag_ms, 1),
                }
            )
            slept = time.perf_counter()
            await asyncio.sleep(SAMPLE_EVERY_S)
            lag_ms = max(0.0, (time.perf_counter() - slept - SAMPLE_EVERY_S) * 1000)
    finally:
        for task in pollers:
            task.cancel()
        # Bounded: a poller that missed its cancellation must not hang the report.
        await asyncio.wait(pollers, timeout=STOP_TIMEOUT_S)


def queue_gauges(text: str, session_id: int) -> dict[str, int | None]:
    """``boxoffice_queue_waiting`` / ``boxoffice_queue_admitted`` of one session from a
    Prometheus text page (None when absent)."""
    found: dict[str, int | None] = {"server_waiting": None, "server_admitted": None}
    label = f'session="{session_id}"'
    for line in text.splitlines():
        if label not in line:
            continue
        for metric, key in (
            ("boxoffice_queue_waiting{", "server_waiting"),
            ("boxoffice_queue_admitted{", "server_admitted"),
        ):
            if line.startswith(metric):
                try:
                    found[key] = int(float(line.rsplit(" ", 1)[1]))
                except (IndexError, ValueError):
                    pass
    return found
