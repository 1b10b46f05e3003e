"""``boxoffice worker``: run one worker process until SIGTERM/SIGINT.

Several may run at once (one consumer group, distinct consumer names). Each process serves
``/metrics``, ``/healthz`` and ``/readyz`` on its own port (``--metrics-port``).
"""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType

from shared.db.engine import make_engine
from svckit.logs import configure_logging
from svckit.redis_client import REDIS_ERRORS, make_sync_redis, resolve
from ticket_server.worker.config import WorkerSettings
from ticket_server.worker.consumer import Worker, WorkerOptions, default_consumer_name
from ticket_server.worker.metrics import OpsServer, WorkerMetrics

log = logging.getLogger("ticket_server.worker")


def build_parser(settings: WorkerSettings) -> argparse.ArgumentParser:
    """Command-line options; defaults come from the settings (``BOXOFFICE_WORKER_*``)."""
    p = argparse.ArgumentParser(prog="boxoffice worker", description=__doc__)
    p.add_argument(
        "--consumer",
        default=settings.worker_consumer or default_consumer_name(),
        help="consumer name in the group (default: hostname-pid)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=settings.worker_batch_size,
        help="entries per transaction (COUNT per stream of each read)",
    )
    p.add_argument(
        "--block-ms",
        type=int,
        default=settings.worker_block_ms,
        help="how long a read waits for new entries",
    )
    p.add_argument(
        "--claim-idle-ms",
        type=int,
        default=settings.worker_claim_idle_ms,
        help="re-claim pending entries idle this long",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=settings.worker_max_attempts,
        help="deliveries before an entry goes to the dead-letter stream",
    )
    p.add_argument("--metrics-host", default=settings.worker_metrics_host)
    p.add_argument(
        "--metrics-port",
        type=int,
        default=settings.worker_metrics_port,
        help="port of /metrics, /healthz, /readyz (0: any free port; <0: off)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the worker; returns the process exit code (0 after a graceful stop)."""
    settings = WorkerSettings()
    if argv and argv[0] == "--":
        # ``boxoffice worker -- --batch-size 2000``: the CLI hands over the separator too.
        argv = argv[1:]
    args = build_parser(settings).parse_args(argv)
    configure_logging(settings.log_level)
    for name, value in (
        ("batch-size", args.batch_size),
        ("block-ms", args.block_ms),
        ("claim-idle-ms", args.claim_idle_ms),
        ("max-attempts", args.max_attempts),
    ):
        if value < 1:
            log.error("option must be at least 1", extra={"option": name, "value": value})
            return 2

    engine = make_engine(settings.resolved_database_url(), **_engine_options(settings))
    timeout = settings.redis_socket_timeout_s
    options = resolve(
        settings.require_redis_url(),
        mode=settings.redis_mode,
        timeout_s=timeout,
        decode_responses=True,
    )
    # A blocking read must not trip the socket timeout.
    client = make_sync_redis(options, socket_timeout=timeout + args.block_ms / 1000)
    # The scrape-time backlog query gets its own client: it runs on the HTTP thread.
    probe = make_sync_redis(options)
    metrics = WorkerMetrics()
    metrics.watch_backlog(probe)
    worker = Worker(
        redis_client=client,
        engine=engine,
        metrics=metrics,
        options=WorkerOptions(
            consumer=args.consumer,
            batch_size=args.batch_size,
            block_ms=args.block_ms,
            claim_idle_ms=args.claim_idle_ms,
            max_attempts=args.max_attempts,
            discover_interval_s=settings.worker_discover_interval_s,
            backoff_base_s=settings.worker_backoff_base_s,
            backoff_cap_s=settings.worker_backoff_cap_s,
        ),
    )

    def ready() -> dict[str, str | None]:
        try:
            probe.ping()
            # Answering PING is not enough: the loop's own Redis work must succeed too.
            redis_state = None if worker.redis_ok is not False else "last attempt failed"
        except REDIS_ERRORS as e:
            redis_state = f"{type(e).__name__}: {e}"
        return {
            "redis": redis_state,
            "database": None if worker.db_ok is not False else "last attempt failed",
            "loop": "stopping" if worker.stopping else None,
        }

    ops: OpsServer | None = None
    if args.metrics_port >= 0:
        try:
            ops = OpsServer(
                host=args.metrics_host,
                port=args.metrics_port,
                registry=metrics.registry,
                ready=ready,
            )
        except OSError as e:
            # Persisting reservations matters more than being scraped: run without it.
            log.warning(
                "ops endpoint not started", extra={"port": args.metrics_port, "error": str(e)}
            )
        else:
            ops.start()
            log.info("ops endpoint", extra={"url": f"http://{args.metrics_host}:{ops.port}"})

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        worker.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if ops:
            ops.stop()
        client.close()
        probe.close()
        engine.dispose()
    return 0


def _engine_options(settings: WorkerSettings) -> dict[str, object]:
    if settings.resolved_database_url().startswith("mysql"):
        # Short transactions that only touch their own rows: READ COMMITTED avoids the gap
        # locks that make concurrent inserting workers deadlock under REPEATABLE READ.
        return {
            "isolation_level": "READ COMMITTED",
            "pool_size": 2,
            "max_overflow": 2,
            # Without a read timeout a silently dropped connection would hang the loop forever.
            "connect_args": {"read_timeout": 60, "write_timeout": 60},
        }
    return {}


if __name__ == "__main__":
    raise SystemExit(main())
