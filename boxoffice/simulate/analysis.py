"""What a run saw, turned into the report's figures, invariants and goals (no I/O; the
people are read, never changed)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from boxoffice.simulate.client import Recorder, Sample
from boxoffice.simulate.options import SimOptions
from boxoffice.simulate.readings import machine
from boxoffice.simulate.stats import admission_fairness, max_overlap, percentile, summarize
from boxoffice.simulate.system import Target
from boxoffice.simulate.user import Person
from boxoffice.simulate.verify import Verification
from shared.draw import commitment, draw_order

# Request steps whose p99 the goal bounds (waiting in the queue is not a request).
STEPS = [
    "login",
    "page",
    "join",
    "status",
    "seatmap",
    "hold",
    "reserve",
    "reserve_replay",
    "release",
    "cancel",
    "leave",
]
P99_GOAL_MS = 250.0


def latency_by_step(samples: list[Sample]) -> dict[str, dict[str, float | int | None]]:
    """p50/p95/p99/max per step over the whole run (every answered request)."""
    by_step: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        if s.status:
            by_step[s.step].append(s.ms)
    ordered = [s for s in STEPS if s in by_step] + sorted(set(by_step) - set(STEPS))
    return {step: summarize(by_step[step]) for step in ordered}


def statuses_by_step(samples: list[Sample]) -> dict[str, dict[str, int]]:
    """How many answers of each status per step (0 = no HTTP answer)."""
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for s in samples:
        counts[s.step][s.status] += 1
    return {step: {str(k): v for k, v in sorted(c.items())} for step, c in counts.items()}


def latency_timeline(samples: list[Sample], bucket_s: float = 1.0) -> dict[str, list[list[float]]]:
    """Per step, per time bucket: [t, p50, p95, p99, count]."""
    buckets: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        if s.status:
            buckets[s.step][int(s.t // bucket_s)].append(s.ms)
    out: dict[str, list[list[float]]] = {}
    for step, by_t in buckets.items():
        rows = []
        for b in sorted(by_t):
            v = by_t[b]
            rows.append(
                [
                    b * bucket_s,
                    percentile(v, 50) or 0.0,
                    percentile(v, 95) or 0.0,
                    percentile(v, 99) or 0.0,
                    float(len(v)),
                ]
            )
        out[step] = rows
    return out


def sell_out_times(
    people: list[Person], capacity: int, t0: float
) -> tuple[float | None, float | None]:
    """When the net seats sold first reached ``capacity``, and when it last did, in seconds
    from the opening (``t0``, wall clock): sales at the server's ``completion_ms``,
    cancellations at our own (wall-clock) cancel time."""
    events: list[tuple[float, int]] = []
    for p in people:
        if p.reservation is None:
            continue
        n = len(p.reservation["seat_ids"])
        events.append((int(p.reservation["completion_ms"]) / 1000.0, n))
        if p.cancelled and p.cancel_sent is not None:
            events.append((p.cancel_sent - t0, -n))
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
    redis_shards: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Turn what was seen into the report's figures, invariants and goals."""
    t0 = recorder.t0
    first_sold_out, final_sold_out = sell_out_times(people, options.seats, t0)

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
        # may leave a seat unsold at the end (the waiters were told and went home). Either
        # the server said so (a waiter was told "sold_out") or the clients' timeline shows
        # it; that timeline dates cancellations by when they were sent, not applied, so it
        # can miss a moment the server had every seat sold.
        _check(
            "sold out (sold at end / capacity)",
            f"{sold_final}/{options.seats}",
            "capacity reached",
            first_sold_out is not None or sold_out_seen_at is not None,
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
        # Per master of a cluster: commands during the sale and their share of all.
        "redis_shards": redis_shards or {},
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
