"""One simulation run from start to report: the orchestration (start the system, set the
stage, run the crowd, verify), with the probes in ``probes.py``, the figures in
``analysis.py`` and the writers in ``report.py``."""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from boxoffice.simulate.analysis import build_report
from boxoffice.simulate.catalog import SetupError, create_stage
from boxoffice.simulate.client import Recorder, SimClient, make_http_client, make_session
from boxoffice.simulate.options import SimOptions, validate
from boxoffice.simulate.probes import STOP_TIMEOUT_S, RedisProbe, sample_timeline, shard_shares
from boxoffice.simulate.readings import cpu_by_name, load_average
from boxoffice.simulate.report import markdown, plot, print_report, write_json, write_people
from boxoffice.simulate.system import LocalSystem, MissingService, Target, remote_target
from boxoffice.simulate.user import Person, Simulation, log_in
from boxoffice.simulate.verify import verify
from shared.config import CommonSettings
from svckit.gc_tuning import freeze_startup_heap


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
        shards_before = dict(probe.per_shard)
        cpu_before = cpu_by_name(system_pids)
        requests_before = recorder.count()
        sampler = asyncio.create_task(
            sample_timeline(
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
        shards = shard_shares(shards_before, probe.per_shard)
        cpu_after = cpu_by_name(system_pids)
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
            redis_shards=shards,
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
