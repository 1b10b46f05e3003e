"""Where api_server's reads go: the read replica while it is usable, else the primary.

A background task samples the replica every ``read_replica_check_interval_s`` (never per
request): can it be reached, are its replication threads running, and how far behind is it
(``Seconds_Behind_Master``). Reads go to the replica while it answers, replicates, and is at
most ``read_replica_max_lag_s`` behind; otherwise they fall back to the primary, as long as
the primary answers (during a primary outage a stale replica beats no answer). With
``read_replica_max_lag_s = 0`` there is no fallback: reads stay on the replica whatever its
state. Why: the replica exists to take read load off the primary, but a browse that answers
from the primary beats a browse that answers 503 or shows an on-sale minutes old; the
fallback is visible in ``/metrics`` and ``/readyz`` so an operator sees it (README, "Read
replica").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.engine import make_session_factory

log = logging.getLogger("boxoffice.api_server.replica")

# MySQL/MariaDB "access denied" for SHOW REPLICA STATUS (REPLICATION CLIENT / SLAVE MONITOR
# missing): the lag is then unknown, which is not a reason to stop using the replica.
_ACCESS_DENIED = {1227, 1044, 1142}
# The least time a sample gets before the replica counts as unreachable.
SAMPLE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ReplicaState:
    """One sample of the replica."""

    reachable: bool
    # False when a replication thread is stopped; None when the server shows no replication
    # status (not a MySQL replica, or no privilege to see it).
    replicating: bool | None
    lag_s: float | None
    error: str | None = None

    def problem(self, max_lag_s: float) -> str | None:
        """Why reads should not use this replica, or ``None`` when they may. Public (it goes
        into /readyz), so the driver's error, which names the replica's address, stays out:
        :attr:`error` is logged instead."""
        if not self.reachable:
            return "unreachable"
        if self.replicating is False:
            return "replication stopped"
        if max_lag_s > 0 and self.lag_s is not None and self.lag_s > max_lag_s:
            return f"{self.lag_s:g}s behind the primary (bound {max_lag_s:g}s)"
        return None


def _replication_row(conn: Any) -> dict[str, Any] | None:
    # SHOW REPLICA STATUS: MariaDB >= 10.5.1, MySQL >= 8.0.22 (where SHOW SLAVE STATUS is
    # deprecated, and gone in 8.4); the older spelling for older servers.
    for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            row = conn.exec_driver_sql(statement).mappings().first()
        except DBAPIError as e:
            code = e.orig.args[0] if e.orig is not None and e.orig.args else None
            if code == 1064:  # syntax error: try the other spelling
                conn.rollback()
                continue
            raise
        return dict(row) if row is not None else None
    return None


def _first(row: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in row:
            return row[name]
    return None


def sample_replica(engine: Engine) -> ReplicaState:
    """Connect to the replica and read its replication status (blocking)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            if engine.dialect.name != "mysql":
                return ReplicaState(reachable=True, replicating=None, lag_s=None)
            try:
                row = _replication_row(conn)
            except DBAPIError as e:
                code = e.orig.args[0] if e.orig is not None and e.orig.args else None
                if code not in _ACCESS_DENIED:
                    raise
                return ReplicaState(reachable=True, replicating=None, lag_s=None)
    except SQLAlchemyError as e:
        return ReplicaState(reachable=False, replicating=None, lag_s=None, error=_short(e))
    if row is None:
        return ReplicaState(reachable=True, replicating=None, lag_s=None)
    io = _first(row, "Replica_IO_Running", "Slave_IO_Running")
    sql = _first(row, "Replica_SQL_Running", "Slave_SQL_Running")
    lag = _first(row, "Seconds_Behind_Source", "Seconds_Behind_Master")
    return ReplicaState(
        reachable=True,
        replicating=io == "Yes" and sql == "Yes",
        lag_s=float(lag) if lag is not None else None,
    )


def _short(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return str(orig if orig is not None else e)[:200]


def _primary_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


class ReadMetrics:
    """The read-routing metrics, in the app's registry (created with the app, not per
    lifespan, so one app can be served more than once)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        reads = Counter(
            "boxoffice_db_reads_total",
            "Read requests by the database that served them (replica or primary).",
            ["target"],
            registry=registry,
        )
        self.reads_primary = reads.labels("primary")
        self.reads_replica = reads.labels("replica")
        # The router of the running lifespan; the collector reports nothing without one.
        self.router: ReadRouter | None = None
        registry.register(_ReplicaCollector(self))


class ReadRouter:
    """Chooses the session factory of each read; samples the replica in the background."""

    def __init__(
        self,
        *,
        primary: Engine,
        replica: Engine | None,
        max_lag_s: float,
        interval_s: float,
        metrics: ReadMetrics,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.max_lag_s = max_lag_s
        self.interval_s = interval_s
        self.metrics = metrics
        self._primary_factory = make_session_factory(primary)
        self._replica_factory = make_session_factory(replica) if replica is not None else None
        # Until the first sample, trust the replica.
        self.state = ReplicaState(reachable=True, replicating=None, lag_s=None)
        self.sampled_at = time.monotonic()
        self.on_primary = replica is None
        self._pending: asyncio.Future[ReplicaState] | None = None

    @property
    def fallback(self) -> bool:
        """Whether reads may move to the primary (``read_replica_max_lag_s > 0``)."""
        return self.max_lag_s > 0

    def session_factory(self) -> sessionmaker[Session]:
        """The factory for this read: the replica's, or the primary's while falling back."""
        if self._replica_factory is None or self.on_primary:
            self.metrics.reads_primary.inc()
            return self._primary_factory
        self.metrics.reads_replica.inc()
        return self._replica_factory

    def refresh(self) -> ReplicaState:
        """Sample the replica now and decide where reads go (blocking; run in a thread)."""
        if self.replica is None:  # no replica: reads use the primary, nothing to sample
            return self.state
        state = sample_replica(self.replica)
        problem = state.problem(self.max_lag_s)
        on_primary = self.fallback and problem is not None and _primary_answers(self.primary)
        if on_primary != self.on_primary:
            if on_primary:
                log.warning(
                    "read replica %s (%s): reads go to the primary", problem, state.error or "-"
                )
            else:
                log.warning("read replica usable again: reads go back to it")
        self.state, self.on_primary = state, on_primary
        self.sampled_at = time.monotonic()
        return state

    @property
    def sample_timeout_s(self) -> float:
        """How long a sample may take before the replica counts as unreachable."""
        return max(self.interval_s, SAMPLE_TIMEOUT_S)

    def _no_answer(self) -> None:
        # A hung replica (frozen, or cut off without a reset) answers nothing, not even an
        # error: its pooled connections wait forever. Counted as unreachable; the primary is
        # assumed up (its own readiness check says otherwise).
        state = ReplicaState(
            reachable=False,
            replicating=None,
            lag_s=None,
            error=f"no answer within {self.sample_timeout_s:g}s",
        )
        if self.fallback and not self.on_primary:
            log.warning("read replica %s: reads go to the primary", state.problem(0))
        self.state, self.on_primary = state, self.fallback
        self.sampled_at = time.monotonic()

    async def sample(self) -> None:
        """Sample the replica in a thread, waiting at most ``sample_timeout_s``. A sample
        still running from last time is waited for, never doubled, so a hung replica holds
        one thread, not one per interval."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(asyncio.to_thread(self.refresh))
        try:
            await asyncio.wait_for(asyncio.shield(self._pending), self.sample_timeout_s)
        except TimeoutError:
            self._no_answer()
            return
        except Exception:  # a sampling bug must not stop sampling: reads keep flowing
            log.exception("read replica sample failed")
        self._pending = None

    async def run(self) -> None:
        """Sample every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.sample()

    def readiness(self) -> str | None:
        """``/readyz``'s word on reads: ``None`` when all is well, a note when reads fall
        back or may be stale; raises when reads cannot be served (no fallback, replica
        unreachable)."""
        problem = self.state.problem(self.max_lag_s)
        if problem is None:
            return None
        if self.on_primary:
            return f"replica {problem}; reads use the primary"
        if not self.state.reachable:
            raise ReplicaUnavailable(f"read replica {problem}")
        return f"replica {problem}; reads may be stale"


class ReplicaUnavailable(ConnectionError):
    """Reads cannot be served: the replica is unreachable and there is no fallback. Its
    name is what /readyz shows (svckit.ops keeps exception messages in the log)."""


class _ReplicaCollector(Collector):
    """The last sample, at scrape time (a scrape queries nothing)."""

    def __init__(self, metrics: ReadMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        router = self._metrics.router
        if router is None or router.replica is None:
            return
        state = router.state
        up = GaugeMetricFamily(
            "boxoffice_db_replica_up", "1 while the read replica answers, else 0."
        )
        up.add_metric([], 1.0 if state.reachable else 0.0)
        replicating = GaugeMetricFamily(
            "boxoffice_db_replica_replicating",
            "1 while both replication threads run, 0 when one is stopped, NaN if unknown.",
        )
        replicating.add_metric(
            [], math.nan if state.replicating is None else float(state.replicating)
        )
        lag = GaugeMetricFamily(
            "boxoffice_db_replica_lag_seconds",
            "Seconds_Behind_Master at the last sample; NaN when unknown (down, stopped).",
        )
        lag.add_metric([], math.nan if state.lag_s is None else state.lag_s)
        fallback = GaugeMetricFamily(
            "boxoffice_db_reads_on_primary",
            "1 while reads fall back to the primary because the replica is not usable.",
        )
        fallback.add_metric([], 1.0 if router.on_primary else 0.0)
        sampled = GaugeMetricFamily(
            "boxoffice_db_replica_sample_age_seconds", "Seconds since the last sample."
        )
        sampled.add_metric([], time.monotonic() - router.sampled_at)
        yield from (up, replicating, lag, fallback, sampled)
