"""The worker's metrics (own registry per process) and its small operations HTTP server:
``/metrics``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import orjson
import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import keys
from shared.problems import PROBLEM_CONTENT_TYPE
from svckit.problems import NotFound, ServiceUnavailable, error_json

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class GroupBacklog:
    """Entries of the event streams a consumer group has not applied yet."""

    unread: int  # not yet delivered to any consumer of the group
    pending: int  # delivered, not acknowledged
    streams: int

    @property
    def lag(self) -> int:
        """Everything not applied yet: unread plus pending."""
        return self.unread + self.pending


def _unread(client: redis.Redis, stream: str, info: dict[str, Any]) -> int:
    lag = info.get("lag")
    if lag is not None:
        return int(lag)
    # Redis cannot tell (entries were deleted): count what follows the last delivered id.
    last = info.get("last-delivered-id") or "0-0"
    rest: Any = client.xrange(stream, f"({last}", "+", count=100_000)
    return len(rest)


def group_backlog(
    client: redis.Redis,
    group: str = keys.WORKER_GROUP,
    session_ids: Iterable[int] | None = None,
) -> GroupBacklog:
    """Sum the group's unread and pending entries over every registered event stream, or
    over the streams of ``session_ids`` (``client`` must decode responses)."""
    unread = pending = streams = 0
    members = session_ids if session_ids is not None else client.smembers(keys.EVENT_STREAMS)
    for member in cast(Any, members):
        try:
            stream = keys.events_stream(int(member))
        except ValueError:
            continue
        try:
            groups = client.xinfo_groups(stream)
        except redis.ResponseError:  # no such stream yet
            continue
        for info in cast(Any, groups):
            if info["name"] == group:
                streams += 1
                pending += int(info["pending"])
                unread += _unread(client, stream, info)
    return GroupBacklog(unread=unread, pending=pending, streams=streams)


class _BacklogCollector(Collector):
    """Reads the backlog from Redis at scrape time, so the figure is never stale."""

    def __init__(self, client: redis.Redis, group: str) -> None:
        self._client = client
        self._group = group

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "boxoffice_worker_lag", "Stream entries not yet applied (unread + pending)."
        )
        pending = GaugeMetricFamily(
            "boxoffice_worker_pending", "Entries delivered to a consumer but not acknowledged."
        )
        streams = GaugeMetricFamily("boxoffice_worker_streams", "Event streams consumed.")
        try:
            backlog = group_backlog(self._client, self._group)
        except redis.RedisError as e:
            log.warning("backlog unavailable", extra={"error": str(e)})
            nan = float("nan")
            lag.add_metric([], nan)
            pending.add_metric([], nan)
            streams.add_metric([], nan)
        else:
            lag.add_metric([], backlog.lag)
            pending.add_metric([], backlog.pending)
            streams.add_metric([], backlog.streams)
        yield lag
        yield pending
        yield streams


class WorkerMetrics:
    """Counters and histograms of one worker process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.applied = Counter(
            "boxoffice_worker_events_applied",
            "Events committed to the database, by type.",
            ["type"],
            registry=r,
        )
        self.batch_size = Histogram(
            "boxoffice_worker_batch_size",
            "Entries per batch read.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "boxoffice_worker_batch_duration_seconds",
            "Time to apply and acknowledge one batch.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "boxoffice_worker_dead_letters",
            "Entries moved to the dead-letter stream, by reason.",
            ["reason"],
            registry=r,
        )
        self.db_errors = Counter(
            "boxoffice_worker_db_errors",
            "Failed database attempts (unavailable or busy); the work is retried.",
            registry=r,
        )
        self.apply_failures = Counter(
            "boxoffice_worker_apply_failures",
            "Events the database refused; left pending for a later attempt.",
            registry=r,
        )
        self.claimed = Counter(
            "boxoffice_worker_claimed",
            "Idle pending entries re-claimed (from dead consumers or failed attempts).",
            registry=r,
        )

    def watch_backlog(self, client: redis.Redis, group: str = keys.WORKER_GROUP) -> None:
        """Expose the group's lag, read from Redis on every scrape."""
        self.registry.register(_BacklogCollector(client, group))


ReadyCheck = Callable[[], dict[str, str | None]]


class OpsServer:
    """``/metrics``, ``/healthz``, ``/readyz`` on a thread (the worker loop is synchronous).

    ``ready`` returns ``{check name: None if fine else the reason}``.
    """

    def __init__(
        self, *, host: str, port: int, registry: CollectorRegistry, ready: ReadyCheck
    ) -> None:
        handler = _handler(registry, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-ops", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, ready: ReadyCheck) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                self._send(200, "application/json", b'{"status":"ok"}')
            elif path == "/readyz":
                self._readyz()
            else:
                self._send(
                    404, PROBLEM_CONTENT_TYPE, error_json(NotFound(f"no route {path}"), None)
                )

        def _readyz(self) -> None:
            try:
                checks = ready()
            except Exception as e:  # a failing check means "not ready", with the reason
                checks = {"worker": f"{type(e).__name__}: {e}"}
            failing = {k: v for k, v in checks.items() if v is not None}
            if not failing:
                doc = {"status": "ready", "checks": dict.fromkeys(checks, "ok")}
                self._send(200, "application/json", orjson.dumps(doc))
                return
            detail = "not ready: " + ", ".join(sorted(failing))
            not_ready = ServiceUnavailable(detail, slug="not-ready", failing=failing)
            self._send(503, PROBLEM_CONTENT_TYPE, error_json(not_ready, None), retry_after=True)

        def _send(self, status: int, ctype: str, body: bytes, retry_after: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if retry_after:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the worker's own log

    return Handler
