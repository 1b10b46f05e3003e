"""One simulation run from start to report."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from boxoffice.simulate.catalog import SetupError, create_stage
from boxoffice.simulate.client import Recorder, SimClient, make_http_client, make_session
from boxoffice.simulate.options import SimOptions, validate
from boxoffice.simulate.report import (
    P99_GOAL_MS,
    latency_by_step,
    latency_timeline,
    load_average,
    machine,
    markdown,
    plot,
    print_report,
    statuses_by_step,
    write_json,
)
from boxoffice.simulate.stats import admission_fairness, max_overlap, summarize
from boxoffice.simulate.system import LocalSystem, MissingService, Target, remote_target
from boxoffice.simulate.user import Person, Simulation, log_in
from boxoffice.simulate.verify import Verification, verify
from shared.config import CommonSettings
from shared.draw import commitment, draw_order
from shared.keys import WORKER_GROUP, events_stream
from svckit.gc_tuning import freeze_startup_heap

SAMPLE_EVERY_S = 0.5
STOP_TIMEOUT_S = 5.0


class RedisProbe:
    """Optional look at the Redis under test: command counts and the worker group's lag.
    Counts its own commands so they can be left out of the per-request figure."""

    def __init__(self, url: str | None) -> None:
        self.client: Any = None
        self.own_commands = 0
        if url:
            import redis.asyncio as aioredis

            self.client = aioredis.Redis.from_url(url, decode_responses=True)

    async def command_counts(self) -> dict[str, int] | None:
        """``calls`` per command from INFO commandstats."""
        if self.client is None:
            return None
        try:
            info = await self.client.info("commandstats")
        except Exception:  # an optional figure: a failing probe must not end the run
            return None
        self.own_commands += 1
        return {
            name.removeprefix("cmdstat_"): int(v.get("calls", 0))
            for name, v in info.items()
            if isinstance(v, dict)
        }

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


async def _sampler(
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


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User+system CPU seconds so far of each named process (Linux ``/proc``), and of this
    one (the simulator itself) as ``simulator``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"simulator": sum(os.times()[:2])}
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return out


async def simulate(
    options: SimOptions,
    target: Target,
    out_dir: Path,
    system_pids: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Run the crowd against ``target`` and return the report."""
    system_pids = system_pids or {}
    load_before = load_average()
    rng = random.Random(options.seed)
    recorder = Recorder()
    http = make_http_client()
    session = make_session()
    probe = RedisProbe(target.redis_url)
    client = SimClient(session, recorder, concurrency=options.concurrency)
    timeline: list[dict[str, Any]] = []
    # No cyclic garbage collection while the crowd runs, logins included (as ``timeit``
    # does): its passes stalled this loop, so every latency measured in it, by up to 250 ms.
    # Reference counting still frees nearly everything; the rest waits for the end.
    freeze_startup_heap(enabled=True)
    gc.disable()
    try:
        base = target.gateway_urls[0]
        label = datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + f"-{rng.randrange(10**6):06d}"
        people = [
            Person(
                index=i,
                base_url=target.gateway_urls[i % len(target.gateway_urls)],
                nickname=f"sim-{i + 1}",
            )
            for i in range(options.users)
        ]

        async def everyone_logs_in() -> None:
            if options.progress:
                print(f"{len(people)} people log in ...", flush=True)
            await asyncio.gather(
                *(log_in(client, p, with_address=options.forwarded_for) for p in people)
            )

        stage = await create_stage(
            http,
            base,
            admin_token=target.admin_token,
            seats=options.seats,
            lead_s=options.lead_s,
            max_active=options.max_active,
            admit_per_second=options.admit_per_second,
            label=label,
            before_session=everyone_logs_in,
            pre_queue=options.pre_queue_share > 0,
        )
        recorder.rebase(stage.opens_at)
        sim = Simulation(
            client=client,
            options=options,
            stage=stage,
            heartbeat_timeout_s=target.heartbeat_timeout_s,
            rng=rng,
        )
        arrivals = [stage.opens_at + rng.random() * options.arrival_window_s for _ in people]
        # Part of the crowd arrives in the pre-queue window (from now until just before
        # booking opens): the draw, not the moment of joining, places them.
        for i in rng.sample(range(len(people)), round(options.pre_queue_share * len(people))):
            people[i].pre_queue = True
            arrivals[i] = time.time() + rng.random() * max(0.0, stage.opens_at - time.time() - 0.5)
        commands_before = await probe.command_counts()
        cpu_before = cpu_seconds(system_pids)
        requests_before = recorder.count()
        sampler = asyncio.create_task(
            _sampler(
                sim,
                people,
                probe,
                f"{base}/api/stats/sessions/{stage.session_id}",
                recorder,
                timeline,
            )
        )
        tasks = [
            asyncio.create_task(sim.run(p, at)) for p, at in zip(people, arrivals, strict=True)
        ]
        await _progress(options, sim, tasks, stage.opens_at)
        for p, task in zip(people, tasks, strict=True):
            if not task.done():
                task.cancel()
                p.outcome = "timeout"
        await asyncio.gather(*tasks, return_exceptions=True)
        for p, task in zip(people, tasks, strict=True):
            if not task.cancelled() and task.exception() is not None:
                p.outcome = "crashed"
                p.detail = repr(task.exception())
        ended = time.time()
        commands_after = await probe.command_counts()
        cpu_after = cpu_seconds(system_pids)
        requests = recorder.count() - requests_before
        sampler.cancel()
        await asyncio.wait({sampler}, timeout=2 * STOP_TIMEOUT_S)
        verification = await verify(
            http,
            base,
            stage=stage,
            people=people,
            secret_key=target.secret_key,
            admission_fallback=sim.last_admission_token,
            drain_timeout_s=options.drain_timeout_s,
            capacity=options.seats,
        )
        stream_lag_end = await probe.stream_lag(stage.session_id)
        draw = None
        if stage.commitment is not None:
            record = await http.get(f"{base}/api/queue/{stage.session_id}/draw")
            draw = {**record.json(), "published_commitment": stage.commitment}
        redis_commands = None
        top_commands: dict[str, int] = {}
        if commands_before is not None and commands_after is not None:
            delta = {
                name: n - commands_before.get(name, 0)
                for name, n in commands_after.items()
                if n - commands_before.get(name, 0) > 0
            }
            top_commands = dict(sorted(delta.items(), key=lambda kv: -kv[1])[:12])
            # Leave out the probe's own commands (INFO and XINFO) taken in between.
            redis_commands = max(0, sum(delta.values()) - probe.own_commands + 1)
        return build_report(
            options=options,
            target=target,
            stage_info={
                "session_id": stage.session_id,
                "opens_at": datetime.fromtimestamp(stage.opens_at, UTC).isoformat(),
                "draw": draw,
            },
            people=people,
            recorder=recorder,
            timeline=timeline,
            verification=verification,
            ran_s=ended - stage.opens_at,
            redis_commands=redis_commands,
            requests=requests,
            stream_lag_end=stream_lag_end,
            sold_out_seen_at=sim.sold_out_seen_at,
            top_commands=top_commands,
            cpu_s={
                name: round(cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0), 2)
                for name in cpu_after
            },
            load_before=load_before,
        )
    finally:
        gc.unfreeze()  # the run's objects become collectable again (in-process callers)
        gc.enable()
        await probe.close()
        await http.aclose()
        await client.aclose()
        await session.close()


async def _progress(
    options: SimOptions, sim: Simulation, tasks: list[asyncio.Task[None]], opens_at: float
) -> None:
    deadline = opens_at + options.duration_s
    if not options.progress:
        while time.time() < deadline and not all(t.done() for t in tasks):
            await asyncio.sleep(0.2)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    ) as bar:
        people = bar.add_task("people done", total=len(tasks), info="")
        seats = bar.add_task("seats sold", total=options.seats, info="")
        while time.time() < deadline and not all(t.done() for t in tasks):
            c = sim.crowd
            phase = "before open" if time.time() < opens_at else "on sale"
            bar.update(
                people,
                completed=c.finished,
                info=f"{phase} · waiting {c.waiting} · active {c.active}",
            )
            bar.update(seats, completed=c.sold_seats, info=f"reservations {c.confirmed}")
            await asyncio.sleep(0.2)
        bar.update(people, completed=sim.crowd.finished)
        bar.update(seats, completed=sim.crowd.sold_seats)


def _sell_out_times(people: list[Person], capacity: int) -> tuple[float | None, float | None]:
    # Net seats sold over time (server's completion_ms for sales, our cancel time for
    # cancellations): the first moment it reached capacity, and the moment it last did.
    events: list[tuple[float, int]] = []
    for p in people:
        if p.reservation is None:
            continue
        n = len(p.reservation["seat_ids"])
        events.append((int(p.reservation["completion_ms"]) / 1000.0, n))
        if p.cancelled and p.cancel_sent is not None:
            events.append((p.cancel_sent, -n))
    events.sort()
    first = last = None
    net = 0
    for t, delta in events:
        net += delta
        if net >= capacity:
            first = t if first is None else first
            last = t
    return first, last


def build_report(
    *,
    options: SimOptions,
    target: Target,
    stage_info: dict[str, Any],
    people: list[Person],
    recorder: Recorder,
    timeline: list[dict[str, Any]],
    verification: Verification,
    ran_s: float,
    redis_commands: int | None,
    requests: int,
    stream_lag_end: int | None,
    sold_out_seen_at: float | None,
    top_commands: dict[str, int] | None = None,
    cpu_s: dict[str, float] | None = None,
    load_before: str | None = None,
) -> dict[str, Any]:
    """Turn what was seen into the report's figures, invariants and goals."""
    t0 = recorder.t0
    # Cancellation times are wall clock; make them relative to the opening like the sales.
    for p in people:
        if p.cancel_sent is not None:
            p.cancel_sent -= t0
    first_sold_out, final_sold_out = _sell_out_times(people, options.seats)
    for p in people:
        if p.cancel_sent is not None:
            p.cancel_sent += t0

    admitted = [p for p in people if p.admitted_received is not None]
    # Fairness is first come, first served among those who joined after opening (the
    # pre-queue's order is the draw's, checked below).
    with_position = [p for p in admitted if p.queue_position is not None and not p.pre_queue]
    windows = [p.admission_window() for p in with_position]
    fairness = admission_fairness(
        [int(p.queue_position or 0) for p in with_position],
        [w for w in windows if w is not None],
    )
    # A client's view of a slot ([admission known, release sent]) lies inside the server's,
    # so this peak can only under-count: it exceeding max_active is a proven violation.
    active_intervals = [
        (p.admitted_received or 0.0, p.slot_released or p.admitted_received or 0.0)
        for p in admitted
        if p.slot_released is not None
    ]
    max_active_seen = max_overlap(active_intervals)
    # Sampled once a second from the gateway's gauge: can miss a peak, never invent one.
    server_slots = max(
        (int(row["server_admitted"]) for row in timeline if row.get("server_admitted")),
        default=None,
    )

    # Where slot time goes (client view): how late people noticed their admission (upper
    # bound: the token's iat is truncated to the second) and how long they then booked.
    notice = [
        p.admitted_received - p.admission_iat
        for p in admitted
        if p.admitted_received is not None and p.admission_iat is not None
    ]
    held = [
        p.slot_released - p.admitted_received
        for p in admitted
        if p.slot_released is not None and p.admitted_received is not None
    ]
    loop_lag = [float(row.get("sim_loop_lag_ms") or 0.0) for row in timeline]

    samples = recorder.samples
    lat = latency_by_step(samples)
    statuses = statuses_by_step(samples)
    five_xx = sum(1 for s in samples if s.status >= 500)
    no_answer = sum(1 for s in samples if s.status == 0)
    outcomes: dict[str, int] = {}
    for p in people:
        outcomes[p.outcome] = outcomes.get(p.outcome, 0) + 1
    errors = [f"#{p.index + 1}: {p.detail}" for p in people if p.outcome in ("error", "crashed")]

    v = verification
    sold_final = v.client_sold_seats
    summary = {
        "users": options.users,
        "capacity": options.seats,
        "seats_sold": sold_final,
        "reservations": v.client_reservations,
        "time_to_sell_out_s": first_sold_out,
        "final_sell_out_s": final_sold_out,
        "sold_out_announced_s": (sold_out_seen_at - t0) if sold_out_seen_at else None,
        "ran_s": round(ran_s, 2),
        "admitted": len(admitted),
        "requests": recorder.count(),
        "redis_commands_per_request": (
            round(redis_commands / requests, 2) if redis_commands is not None and requests else None
        ),
        "worker_drain_s": round(v.drain_s, 2),
        **{f"outcome_{k}": n for k, n in sorted(outcomes.items())},
    }
    invariants = [
        _check("oversold seats", v.oversold_seats, "0", v.oversold_seats == 0),
        _check(
            "seats of confirmed reservations not shown sold",
            v.sold_seats_not_in_map,
            "0",
            v.sold_seats_not_in_map == 0 and v.seatmap_sold is not None,
        ),
        _check(
            "sold in Redis seat map = sold to clients",
            f"{v.seatmap_sold} / {v.client_sold_seats}",
            "equal",
            v.seatmap_sold == v.client_sold_seats,
        ),
        _check(
            "reservations in MySQL = confirmed to clients",
            f"{v.mysql_reservations} / {v.client_reservations}",
            "equal",
            v.drained,
        ),
        _check("lost reservations", v.lost, "0", v.lost == 0),
        _check("phantom reservations", v.phantom, "0", v.phantom == 0),
        _check(
            "rankings match clients' ranks",
            len(v.ranking_mismatches),
            "0",
            not v.ranking_mismatches,
        ),
        _check(
            "idempotent replays differing",
            v.idempotency_mismatches,
            "0",
            v.idempotency_mismatches == 0,
        ),
        _check("5xx responses", five_xx, "0", five_xx == 0),
        _check("requests without an answer", no_answer, "0", no_answer == 0),
        _check(
            "discordant admissions (fairness)", fairness.discordant, "0", fairness.discordant == 0
        ),
        _check(
            "max active observed",
            max_active_seen,
            f"<= {options.max_active}",
            max_active_seen <= options.max_active,
        ),
        _check(
            "slots in use, gateway gauge (sampled max)",
            server_slots,
            f"<= {options.max_active}",
            server_slots is None or server_slots <= options.max_active,
        ),
        _check("people ending in error", len(errors), "0", not errors),
        *draw_checks(people, stage_info.get("draw")),
    ]
    p99s = {
        step: fig["p99"]
        for step, fig in lat.items()
        if fig["p99"] is not None and "(sampler)" not in step  # people's steps only
    }
    worst_step = max(p99s, key=lambda k: p99s[k] or 0.0) if p99s else None
    goals = [
        # Reached capacity at some moment: a cancellation after the sell-out was announced
        # may leave a seat unsold at the end (the waiters were told and went home).
        _check(
            "sold out (sold at end / capacity)",
            f"{sold_final}/{options.seats}",
            "capacity reached",
            first_sold_out is not None,
        ),
        _check("Kendall tau (join vs admission)", fairness.tau, "1.0", fairness.tau == 1.0),
        _check(
            "worst p99 of a step (ms)",
            f"{worst_step}: {p99s[worst_step]:.1f}" if worst_step else None,
            f"< {P99_GOAL_MS:.0f}",
            all((v_ or 0) < P99_GOAL_MS for v_ in p99s.values()),
        ),
    ]
    notes = [
        "Latencies are measured by the simulator, which shares the CPU with the system "
        "under test; they include its own event-loop delays.",
        f"Fairness: {fairness.known_pairs} of {fairness.total_pairs} admitted pairs have a "
        "known admission order (see boxoffice/simulate/stats.py: Fairness).",
    ]
    if redis_commands is not None:
        notes.append(
            "Redis commands per request: INFO commandstats delta (whole server, background "
            "work of gateways and worker included) / requests the crowd made."
        )
    if v.seatmap_error:
        notes.append(f"seat map check failed: {v.seatmap_error}")
    notes.extend(f"rankings: {m}" for m in v.ranking_mismatches)
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "options": asdict(options),
        "target": {"gateways": target.gateway_urls, "redis": bool(target.redis_url)},
        "machine": {**machine(), "load_before": load_before},
        "session": stage_info,
        "summary": summary,
        "invariants": invariants,
        "goals": goals,
        "ok": all(row["ok"] for row in invariants),
        "fairness": {
            "kendall_tau": fairness.tau,
            "known_pairs": fairness.known_pairs,
            "total_pairs": fairness.total_pairs,
            "discordant_pairs": fairness.discordant,
            "max_active": options.max_active,
            "max_active_observed": max_active_seen,
            "server_slots_in_use_max_sampled": server_slots,
        },
        "diagnostics": {
            "admission_noticed_after_s": summarize(notice),
            "slot_held_by_client_s": summarize(held),
            "hold_attempts_per_admitted": summarize([p.hold_attempts for p in admitted]),
            "simulator_loop_lag_ms": summarize(loop_lag),
        },
        "verification": asdict(v),
        "latency_ms": lat,
        "statuses": statuses,
        "transport_errors": dict(recorder.transport_errors),
        "error_examples": recorder.error_examples,
        "micro_cache_answers": dict(recorder.cache_answers),
        "redis_commands_top": top_commands or {},
        "cpu_seconds_during_sale": cpu_s or {},
        # CPU of each process per request the crowd made during the sale (gateways answer
        # every request; backends only the ones routed to them).
        "cpu_ms_per_request": {
            name: round(sec * 1000 / requests, 3) for name, sec in (cpu_s or {}).items()
        }
        if requests
        else {},
        "errors": errors[:50],
        "stream_lag_end": stream_lag_end,
        "timeline": timeline,
        "latency_timeline": latency_timeline(samples),
        "notes": notes,
        # Written to people.jsonl (one line per person), not into report.json.
        "people": [person_row(p, t0) for p in people],
    }


def person_row(p: Person, t0: float) -> dict[str, Any]:
    """One person's journey, times in seconds from booking open."""

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 3)

    r = p.reservation or {}
    return {
        "n": p.index + 1,
        "outcome": p.outcome,
        "detail": p.detail or None,
        "join_sent": rel(p.join_sent),
        "join_received": rel(p.join_received),
        "queue_position": p.queue_position,
        "admission_iat": rel(float(p.admission_iat)) if p.admission_iat is not None else None,
        "admitted_received": rel(p.admitted_received),
        "slot_released": rel(p.slot_released),
        "hold_attempts": p.hold_attempts,
        "conflicts": p.conflicts,
        "rank": r.get("rank"),
        "seats": len(r.get("seat_ids", [])) or None,
        "completion_ms": r.get("completion_ms"),
        "cancelled": p.cancelled,
    }


def write_people(rows: list[dict[str, Any]], out_dir: Path) -> None:
    """``people.jsonl``: every person's journey, for analysis after the fact."""
    with (out_dir / "people.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def draw_checks(people: list[Person], draw: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The pre-queue's draw, checked as any outsider can: the revealed seed matches the
    commitment published before anyone joined, every pre-queue entrant's place in line is
    its rank in HMAC-SHA256(seed, user id) order, and all of them come before everyone who
    joined after opening."""
    if draw is None:
        return []
    seed_hex = draw.get("seed")
    seed = bytes.fromhex(seed_hex) if seed_hex else b""
    entrants = [p.user_id for p in people if p.pre_queue and p.join_received and p.user_id]
    rank = {u: i + 1 for i, u in enumerate(draw_order(seed, entrants))}
    placed = [p for p in people if p.pre_queue and p.queue_position is not None]
    off = [p for p in placed if rank.get(p.user_id or "") != p.queue_position]
    later = [p.queue_position for p in people if not p.pre_queue and p.queue_position]
    last_pre = max((p.queue_position or 0 for p in placed), default=0)
    return [
        _check(
            "pre-queue: revealed seed matches the published commitment",
            draw.get("commitment"),
            "sha256(seed)",
            bool(seed) and commitment(seed) == draw["published_commitment"] == draw["commitment"],
        ),
        _check(
            "pre-queue: entrants drawn",
            draw.get("drawn"),
            str(len(entrants)),
            draw.get("drawn") == len(entrants),
        ),
        _check(
            "pre-queue: places not as the draw says",
            f"{len(off)} of {len(placed)}",
            "0",
            not off,
        ),
        _check(
            "pre-queue: ahead of every later joiner (last pre-queue place)",
            last_pre,
            f"< {min(later)}" if later else "(no later joiner was admitted)",
            not later or last_pre < min(later),
        ),
    ]


def _check(name: str, value: Any, goal: str, ok: bool) -> dict[str, Any]:
    return {"name": name, "value": value, "goal": goal, "ok": bool(ok)}


def run(options: SimOptions) -> int:
    """The ``boxoffice simulate`` command: 0 when every invariant held."""
    problems = validate(options)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = Path(options.out_dir or f"simulate-report-{stamp}")
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = CommonSettings()
    system: LocalSystem | None = None
    if options.url:
        target = remote_target(
            options.url, settings, redis_url=options.redis_url, admin_token=options.admin_token
        )
    else:
        # Our own gateways trust our X-Forwarded-For (see LocalSystem.start).
        options = replace(options, forwarded_for=True)
        system = LocalSystem(
            gateways=options.gateways,
            log_dir=out_dir / "logs",
            admin_token=options.admin_token,
            micro_cache_s=options.micro_cache_s,
        )
        print("starting the system (logs in " + str(out_dir / "logs") + ") ...", flush=True)
        try:
            target = system.start()
        except (MissingService, TimeoutError, RuntimeError) as e:
            system.stop()
            print(f"cannot start the system: {e}", file=sys.stderr)
            return 2
        except BaseException:
            system.stop()
            raise
    try:
        pids = {name: proc.pid for name, proc in system.procs} if system else {}
        report = _run_loop(simulate(options, target, out_dir, pids))
    except (SetupError, httpx.HTTPError, OSError) as e:
        # Nothing to report: the stage could not be set (wrong URL, admin token, ...).
        print(f"cannot set up the on-sale: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    finally:
        if system is not None:
            system.stop()
    write_people(report.pop("people", []), out_dir)
    write_json(report, out_dir)
    command = "boxoffice " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["simulate"] else ""
    (out_dir / "summary.md").write_text(markdown(report, command or "boxoffice simulate"))
    if options.plots:
        plot(report, out_dir)
    print_report(report)
    print(f"report: {out_dir / 'report.json'}", flush=True)
    return 0 if report["ok"] else 1


def _run_loop(coro: Any) -> dict[str, Any]:
    # The services' event loop (``BOXOFFICE_EVENT_LOOP``): the simulator is a crowd of
    # connections too, and an unfair loop would distort the tail it measures.
    if CommonSettings().event_loop == "uvloop":
        import uvloop

        result: dict[str, Any] = uvloop.run(coro)
        return result
    result = asyncio.run(coro)
    return result
