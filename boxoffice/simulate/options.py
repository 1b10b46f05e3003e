"""The simulator's options and their command-line arguments (standard library only, so that
building the ``boxoffice`` parser stays cheap)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SimOptions:
    """Everything one simulation run needs to know."""

    users: int = 5000
    seats: int = 1000
    gateways: int = 1
    duration_s: float = 120.0
    url: list[str] = field(default_factory=list)  # empty: start the system ourselves
    out_dir: str | None = None
    cancel_rate: float = 0.05
    max_active: int = 200
    admit_per_second: float = 100.0
    lead_s: float = 4.0  # booking opens this long after the session is created
    arrival_window_s: float = 1.0  # the burst: joins spread uniformly over this window
    think_s: float = 0.3  # mean pause between a person's steps
    wait_mode: str = "poll"  # "poll" or "sse"
    poll_min_s: float = 0.5
    poll_max_s: float | None = None  # default: a third of the heartbeat timeout
    concurrency: int = 256  # short requests in flight at once
    max_hold_attempts: int = 5
    replay_rate: float = 0.05  # replay the reservation request with the same Idempotency-Key
    drain_timeout_s: float = 60.0
    redis_url: str | None = None  # for INFO commandstats and stream lag (optional)
    redis_cluster: bool = False  # started system: on a local Redis Cluster (3+3 nodes)
    admin_token: str | None = None
    seed: int = 1
    forwarded_for: bool = False  # give each user its own X-Forwarded-For address
    plots: bool = True
    progress: bool = True
    browse: bool = False  # each person loads the session page (anonymous GET) before joining
    micro_cache_s: float = 0.0  # our own gateways: micro-cache TTL of the browse group
    pre_queue_share: float = 0.0  # this share of the crowd joins the pre-queue before opening


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's arguments to ``parser``."""
    d = SimOptions()
    a = parser.add_argument
    a("--users", type=int, default=d.users, help="simulated people (default %(default)s)")
    a("--seats", type=int, default=d.seats, help="seats in the venue (default %(default)s)")
    a("--gateways", type=int, default=d.gateways, help="gateway instances to start")
    a("--duration", type=float, default=d.duration_s, help="give up after S seconds of on-sale")
    a(
        "--url",
        action="append",
        default=[],
        help="target a running gateway instead of starting the system (repeatable)",
    )
    a("--out", default=None, help="report folder (default simulate-report-<time>)")
    a("--cancel-rate", type=float, default=d.cancel_rate, help="share of buyers who cancel")
    a("--max-active", type=int, default=d.max_active, help="queue policy: active slots")
    a("--admit-per-second", type=float, default=d.admit_per_second, help="queue policy: rate")
    a("--lead", type=float, default=d.lead_s, help="seconds from setup to booking open")
    a("--arrival-window", type=float, default=d.arrival_window_s, help="burst width (s)")
    a("--think", type=float, default=d.think_s, help="mean think time between steps (s)")
    a("--wait", choices=["poll", "sse"], default=d.wait_mode, help="how waiters wait")
    a("--poll-min", type=float, default=d.poll_min_s, help="shortest status poll interval (s)")
    a("--poll-max", type=float, default=None, help="longest poll interval (s)")
    a("--concurrency", type=int, default=d.concurrency, help="requests in flight at once")
    a("--max-hold-attempts", type=int, default=d.max_hold_attempts)
    a("--replay-rate", type=float, default=d.replay_rate, help="idempotent replays share")
    a("--drain-timeout", type=float, default=d.drain_timeout_s, help="wait for the worker (s)")
    a("--redis-url", default=None, help="Redis of a --url target (commandstats, stream lag)")
    a(
        "--redis-cluster",
        action="store_true",
        help="started system: run it on a local Redis Cluster (3 masters, 3 replicas)",
    )
    a("--admin-token", default=None, help="default: BOXOFFICE_ADMIN_TOKEN / settings")
    a("--seed", type=int, default=d.seed, help="random seed")
    a(
        "--pre-queue-share",
        type=float,
        default=d.pre_queue_share,
        help="share of the crowd that joins the session's pre-queue before booking opens "
        "(the report then checks the draw); 0: no pre-queue",
    )
    a("--forwarded-for", action="store_true", help="send a per-user X-Forwarded-For")
    a("--no-plots", action="store_true", help="skip the PNG plots")
    a("--no-progress", action="store_true", help="no progress bar")
    a(
        "--browse",
        action="store_true",
        help="each person loads the session page (anonymous GET) just before joining",
    )
    a(
        "--micro-cache",
        type=float,
        default=d.micro_cache_s,
        help="TTL (s) of the gateways' micro-cache for catalog GETs (started system only)",
    )


def from_args(args: argparse.Namespace) -> SimOptions:
    """Options from parsed arguments."""
    return SimOptions(
        users=args.users,
        seats=args.seats,
        gateways=args.gateways,
        duration_s=args.duration,
        url=list(args.url),
        out_dir=args.out,
        cancel_rate=args.cancel_rate,
        max_active=args.max_active,
        admit_per_second=args.admit_per_second,
        lead_s=args.lead,
        arrival_window_s=args.arrival_window,
        think_s=args.think,
        wait_mode=args.wait,
        poll_min_s=args.poll_min,
        poll_max_s=args.poll_max,
        concurrency=args.concurrency,
        max_hold_attempts=args.max_hold_attempts,
        replay_rate=args.replay_rate,
        drain_timeout_s=args.drain_timeout,
        redis_url=args.redis_url,
        redis_cluster=args.redis_cluster,
        admin_token=args.admin_token,
        seed=args.seed,
        forwarded_for=args.forwarded_for,
        plots=not args.no_plots,
        progress=not args.no_progress,
        browse=args.browse,
        micro_cache_s=args.micro_cache,
        pre_queue_share=args.pre_queue_share,
    )


def validate(options: SimOptions) -> list[str]:
    """What is wrong with ``options`` (empty when fine)."""
    errors = []
    if options.users < 1:
        errors.append("--users must be at least 1")
    if options.seats < 1:
        errors.append("--seats must be at least 1")
    if options.gateways < 1:
        errors.append("--gateways must be at least 1")
    if not 0 <= options.cancel_rate <= 1 or not 0 <= options.replay_rate <= 1:
        errors.append("--cancel-rate and --replay-rate are shares between 0 and 1")
    if options.concurrency < 1 or options.max_active < 1 or options.admit_per_second <= 0:
        errors.append("--concurrency, --max-active and --admit-per-second must be positive")
    if options.url and options.micro_cache_s:
        errors.append("--micro-cache configures gateways we start; not with --url")
    if options.url and options.gateways != 1:
        errors.append("--gateways starts instances; with --url, repeat --url instead")
    if not 0 <= options.pre_queue_share <= 1:
        errors.append("--pre-queue-share is a share between 0 and 1")
    if options.pre_queue_share and options.lead_s < 1:
        errors.append("--pre-queue-share needs a --lead of at least 1 s (the pre-queue window)")
    return errors
