"""The consumer loop: read the event streams through one consumer group, apply each batch in
one transaction, acknowledge only after the commit.

Delivery semantics: at least once from Redis, exactly once in the database (the apply step
is idempotent). An entry is acknowledged after its batch committed, or after it went to the
dead-letter stream. No entry stays pending forever:

* A completion whose rank or seats already belong to another stored reservation (what a
  Redis that lost its data, or failed over to a stale replica, hands out again) can never
  apply: ranks are never reused, and the seat's holder is not being cancelled (its
  reservation in Redis is not ``cancelled``). It goes to the dead-letter stream at once,
  with the reason (``rank_taken``, ``seat_taken``), and is acknowledged.
* Any other refusal may pass (a seat whose cancellation another consumer is committing):
  the entry stays pending, comes back through XAUTOCLAIM once idle, and each delivery
  counts as an attempt; after ``max_attempts`` it is dead-lettered with the last refusal.

Streams are never trimmed here: the gateway's queue reads the same streams with its own
group, and trimming could drop entries it has not read yet.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import redis
from pydantic import ValidationError
from redis.cluster import RedisCluster
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from shared import keys
from shared.events import ReservationCompleted, parse_event
from svckit.redis_client import REDIS_ERRORS
from ticket_server.worker.apply import BatchConflict, Event, apply_batch, find_taken, is_transient
from ticket_server.worker.metrics import WorkerMetrics

# A refused event is tried again this many times, this far apart (x attempt), before it is
# left pending: enough for a concurrent worker's transaction on the same reservation to end.
_CONFLICT_RETRIES = 2
_CONFLICT_RETRY_S = 0.05
# Last refusal per pending entry, for the dead letter written once attempts run out.
_REMEMBERED_REFUSALS = 10_000

log = logging.getLogger(__name__)


# On a cluster the worker polls (see Worker._read_each): the longest an event then waits.
CLUSTER_POLL_S = 0.05


def default_consumer_name() -> str:
    """``<hostname>-<pid>``: distinct for every worker process."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker process consumes."""

    consumer: str = field(default_factory=default_consumer_name)
    group: str = keys.WORKER_GROUP
    batch_size: int = 1000
    block_ms: int = 500
    claim_idle_ms: int = 30_000
    max_attempts: int = 5
    discover_interval_s: float = 2.0
    # Consumers with nothing pending and idle this long are forgotten (each restart adds
    # a consumer name; dead ones would otherwise pile up in XINFO CONSUMERS).
    forget_idle_ms: int = 3_600_000
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 10.0


@dataclass
class Entry:
    """One stream entry as delivered to this consumer."""

    stream: str
    entry_id: str
    fields: dict[str, str] | None
    deliveries: int = 1


class StopRequested(Exception):
    """The worker was asked to stop while waiting for the database."""


def stream_vanished(error: redis.ResponseError) -> bool:
    """Whether Redis refused because a stream or its consumer group no longer exists
    (``NOGROUP`` from the stream commands, ``UNBLOCKED`` for a blocked read whose stream
    was deleted, ``no such key`` from ``XINFO``)."""
    text = str(error)
    return "NOGROUP" in text or "UNBLOCKED" in text or "no such key" in text


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Capped exponential backoff with "equal jitter": between half and all of
    ``min(cap, base * 2**attempt)``, so restarted workers do not retry in lockstep."""
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 30)))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


class Worker:
    """One consumer of the reservation event streams. Synchronous: the database driver is."""

    def __init__(
        self,
        *,
        redis_client: redis.Redis,
        engine: Engine,
        options: WorkerOptions | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        """``redis_client`` must decode responses."""
        self.redis = redis_client
        self.engine = engine
        self.opts = options or WorkerOptions()
        self.metrics = metrics or WorkerMetrics()
        self.streams: set[str] = set()
        self.db_ok: bool | None = None  # unknown until the first attempt
        self.redis_ok: bool | None = None
        self._stop = threading.Event()
        self._next_discover = 0.0
        self._next_claim = 0.0
        self._next_forget = 0.0
        self._refusals: dict[tuple[str, str], str] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the current batch and return (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def run(self) -> None:
        """Consume until :meth:`stop`; Redis outages are waited out with backoff."""
        log.info("worker started", extra={"consumer": self.opts.consumer})
        attempt = 0
        while not self.stopping:
            try:
                self.step()
                self.redis_ok = True
                attempt = 0
            except StopRequested:
                break
            except REDIS_ERRORS as e:
                # A cluster client also raises RedisClusterException (not a RedisError),
                # e.g. while no node serves a slot: waited out like any outage.
                if isinstance(e, redis.ResponseError) and stream_vanished(e):
                    # A stream (and its group) vanished, e.g. deleted, or a Redis without
                    # persistence restarted, failed over to a stale replica or was flushed:
                    # forget the streams and set the groups up again.
                    log.warning("consumer group missing; rediscovering", extra={"error": str(e)})
                    self.streams.clear()
                    self._next_discover = 0.0
                    continue
                self.redis_ok = False
                delay = backoff_delay(attempt, self.opts.backoff_base_s, self.opts.backoff_cap_s)
                attempt += 1
                log.warning("redis unavailable", extra={"error": str(e), "retry_in_s": delay})
                self._stop.wait(delay)
        log.info("worker stopped", extra={"consumer": self.opts.consumer})

    # --- one iteration --------------------------------------------------------------------

    def step(self) -> int:
        """Discover streams and re-claim idle entries when due, then read and apply one batch.
        Returns the number of entries handled."""
        now = time.monotonic()
        if now >= self._next_discover:
            self.discover()
            self._next_discover = now + self.opts.discover_interval_s
        handled = 0
        if now >= self._next_claim:
            handled += self.handle(self.claim_idle())
            # Claiming more often than the idle time cannot find more entries.
            self._next_claim = now + max(0.05, self.opts.claim_idle_ms / 2000)
        if now >= self._next_forget:
            self.forget_idle_consumers()
            self.forget_finished_streams()
            self._next_forget = now + max(1.0, self.opts.forget_idle_ms / 10_000)
        if self.stopping:
            return handled
        entries = self.read()
        # COUNT applies per stream, so one read may return batch_size entries from each
        # busy stream: apply them in transactions of at most batch_size. On a stop request
        # the rest stay pending and are re-claimed by the remaining workers.
        for start in range(0, len(entries), self.opts.batch_size):
            if start and self.stopping:
                break
            handled += self.handle(entries[start : start + self.opts.batch_size])
        return handled

    def discover(self) -> None:
        """Create the consumer group on every registered stream not seen yet."""
        for member in cast(Any, self.redis.smembers(keys.EVENT_STREAMS)):
            try:
                stream = keys.events_stream(int(member))
            except ValueError:
                log.warning("odd member in the stream registry", extra={"member": member})
                continue
            if stream in self.streams:
                continue
            try:
                # From id 0: a group created after events were written still gets them all.
                self.redis.xgroup_create(stream, self.opts.group, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            self.streams.add(stream)

    def read(self) -> list[Entry]:
        """New entries for this consumer (blocks up to ``block_ms``)."""
        if not self.streams:
            self._stop.wait(self.opts.block_ms / 1000)
            return []
        if isinstance(self.redis, RedisCluster):
            return self._read_each()
        reply: Any = self.redis.xreadgroup(
            self.opts.group,
            self.opts.consumer,
            dict.fromkeys(sorted(self.streams), ">"),
            count=self.opts.batch_size,
            block=self.opts.block_ms,
        )
        entries: list[Entry] = []
        for stream, items in reply or []:
            entries.extend(Entry(stream, eid, fields) for eid, fields in items)
        return entries

    def _read_each(self) -> list[Entry]:
        # On a cluster the streams live on different nodes, and one XREADGROUP naming them
        # all is refused (CROSSSLOT): one non-blocking read per stream, pipelined (the
        # cluster pipeline writes each node's reads at once); nothing new: wait a moment.
        pipe = self.redis.pipeline(transaction=False)
        streams = sorted(self.streams)
        for stream in streams:
            pipe.xreadgroup(
                self.opts.group, self.opts.consumer, {stream: ">"}, count=self.opts.batch_size
            )
        entries: list[Entry] = []
        for reply in pipe.execute():
            for stream, items in cast(Any, reply) or []:
                entries.extend(Entry(stream, eid, fields) for eid, fields in items)
        if not entries:
            self._stop.wait(min(self.opts.block_ms / 1000, CLUSTER_POLL_S))
        return entries

    def forget_finished_streams(self) -> int:
        """Drop from the registry the sessions whose stream is fully consumed and has had
        nothing new for ``forget_idle_ms`` (a finished sale); returns how many. Otherwise the
        registry only grows and every worker polls every stream ever loaded, forever.
        ticket_server registers a session again before each event it writes (confirm,
        cancel), so a late event is found at the next discovery."""
        dropped = 0
        now_ms = int(time.time() * 1000)
        for stream in sorted(self.streams):
            groups: Any = self.redis.xinfo_groups(stream)
            mine = next((g for g in groups if g["name"] == self.opts.group), None)
            # lag is None when Redis cannot tell (entries deleted): keep the stream.
            if mine is None or int(mine["pending"]) or mine.get("lag") != 0:
                continue
            last_ms = int(str(mine["last-delivered-id"]).split("-", 1)[0])
            if now_ms - last_ms < self.opts.forget_idle_ms:
                continue
            self.redis.srem(keys.EVENT_STREAMS, str(keys.stream_session(stream)))
            self.streams.discard(stream)
            dropped += 1
            log.info("finished session dropped from the stream registry", extra={"stream": stream})
        return dropped

    def forget_idle_consumers(self) -> int:
        """Delete consumers that hold no pending entries and have been idle for
        ``forget_idle_ms``; returns how many. Never touches one with pending entries: those
        are re-claimed first."""
        forgotten = 0
        for stream in sorted(self.streams):
            consumers: Any = self.redis.xinfo_consumers(stream, self.opts.group)
            for c in consumers:
                if (
                    c["name"] != self.opts.consumer
                    and int(c["pending"]) == 0
                    and int(c["idle"]) >= self.opts.forget_idle_ms
                ):
                    # An hour without even a blocking read means the process is gone. Were it
                    # to read in this very instant, the entries it got would leave the PEL
                    # with it: logged as an error, as that would need a manual replay.
                    dropped = self.redis.xgroup_delconsumer(stream, self.opts.group, c["name"])
                    if dropped:
                        log.error(
                            "forgotten consumer held entries",
                            extra={"stream": stream, "consumer": c["name"], "entries": dropped},
                        )
                    forgotten += 1
        return forgotten

    def claim_idle(self) -> list[Entry]:
        """Take over entries pending longer than ``claim_idle_ms`` (a dead consumer's, or ones
        that failed here), with their delivery counts."""
        entries: list[Entry] = []
        for stream in sorted(self.streams):
            room = self.opts.batch_size - len(entries)
            if room <= 0:
                break
            reply: Any = self.redis.xautoclaim(
                stream,
                self.opts.group,
                self.opts.consumer,
                min_idle_time=self.opts.claim_idle_ms,
                start_id="0-0",
                count=room,
            )
            claimed = [(eid, fields) for eid, fields in reply[1]]
            if not claimed:
                continue
            counts = self._delivery_counts(stream, [eid for eid, _ in claimed])
            entries.extend(Entry(stream, eid, f, counts.get(eid, 1)) for eid, f in claimed)
        if entries:
            self.metrics.claimed.inc(len(entries))
            log.info("re-claimed idle entries", extra={"count": len(entries)})
        return entries

    def _delivery_counts(self, stream: str, ids: Sequence[str]) -> dict[str, int]:
        ordered = sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
        rows: Any = self.redis.xpending_range(
            stream,
            self.opts.group,
            min=ordered[0],
            max=ordered[-1],
            count=len(ids) * 4 + 100,
            consumername=self.opts.consumer,
        )
        return {r["message_id"]: int(r["times_delivered"]) for r in rows}

    # --- applying -------------------------------------------------------------------------

    def handle(self, entries: list[Entry]) -> int:
        """Apply, dead-letter or leave pending each entry; acknowledge what is done."""
        if not entries:
            return 0
        started = time.perf_counter()
        self.metrics.batch_size.observe(len(entries))
        good: list[tuple[Entry, Event]] = []
        dead: list[tuple[Entry, str, str]] = []
        for entry in entries:
            if not entry.fields:  # deleted from the stream while pending: nothing to apply
                dead.append((entry, "deleted", "entry no longer in the stream"))
            elif entry.deliveries > self.opts.max_attempts:
                last = self._refusals.pop((entry.stream, entry.entry_id), None)
                detail = f"not applied after {entry.deliveries - 1} attempts"
                dead.append((entry, "max_attempts", f"{detail}: {last}" if last else detail))
            else:
                try:
                    good.append((entry, parse_event(entry.fields)))
                except ValidationError as e:
                    dead.append((entry, "unparseable", _short(e)))
        done, refused = self._apply(good)
        dead += refused
        if dead:
            self._dead_letter(dead)
        self._ack([e for e, _ in done] + [e for e, _, _ in dead])
        for kind, n in Counter(ev.type for _, ev in done).items():
            self.metrics.applied.labels(kind).inc(n)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return len(entries)

    def _apply(
        self, good: list[tuple[Entry, Event]]
    ) -> tuple[list[tuple[Entry, Event]], list[tuple[Entry, str, str]]]:
        """Apply all at once; on refusal, one by one so that one bad entry does not hold
        back the good ones. Returns what was committed, and what can never be (with the
        reason and detail of its dead letter)."""
        if not good:
            return [], []
        try:
            self._apply_retrying([ev for _, ev in good])
            return good, []
        except StopRequested:
            return [], []
        except (SQLAlchemyError, BatchConflict) as e:
            log.info("batch refused; applying one by one", extra={"error": _short(e)})
        done: list[tuple[Entry, Event]] = []
        dead: list[tuple[Entry, str, str]] = []
        for entry, ev in good:
            try:
                verdict = self._apply_one(entry, ev)
            except StopRequested:
                break
            if verdict is True:
                done.append((entry, ev))
            elif verdict:
                dead.append((entry, *verdict))
        return done, dead

    def _apply_one(self, entry: Entry, ev: Event) -> bool | tuple[str, str]:
        """One event in its own transaction: ``True`` once committed, ``(reason, detail)``
        when it can never apply, else ``False`` (left pending).

        A refusal is tried again after a moment: it is usually another worker committing
        the same reservation's other event (a cancel's tombstone, its completion) at that
        very time, and a fresh transaction sees that row."""
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self._apply_retrying([ev])
                return True
            except (SQLAlchemyError, BatchConflict) as e:
                if attempt == _CONFLICT_RETRIES:
                    return self._refused(entry, ev, e)
                time.sleep(_CONFLICT_RETRY_S * (attempt + 1))
        return False

    def _never_applies(self, ev: Event) -> tuple[str, str] | None:
        """``(reason, detail)`` when a refused completion can never apply: its rank or a
        seat belongs to another stored reservation that is not being cancelled."""
        if not isinstance(ev, ReservationCompleted):
            return None
        try:
            taken = find_taken(self.engine, ev)
        except SQLAlchemyError:
            return None  # cannot tell now: the re-claim path decides later
        if taken.rank_holder is not None:
            return "rank_taken", (
                f"rank {ev.rank} of session {ev.session_id} belongs to {taken.rank_holder}"
            )
        if not taken.seat_holders:
            return None
        holders = sorted(set(taken.seat_holders.values()))
        pipe = self.redis.pipeline(transaction=False)
        for rid in holders:
            pipe.hget(keys.reservation(ev.session_id, rid), "status")
        if "cancelled" in pipe.execute():
            return None  # that cancellation is on its way to the database: the seat frees
        seats = ", ".join(f"{s} ({rid})" for s, rid in sorted(taken.seat_holders.items()))
        return "seat_taken", f"seats of session {ev.session_id} already sold: {seats}"

    def _refused(self, entry: Entry, ev: Event, exc: BaseException) -> bool | tuple[str, str]:
        self.metrics.apply_failures.inc()
        verdict = self._never_applies(ev)
        if verdict is not None:
            return verdict
        if len(self._refusals) >= _REMEMBERED_REFUSALS:
            self._refusals.clear()  # only the dead letter's detail is lost
        self._refusals[(entry.stream, entry.entry_id)] = _short(exc)
        log.warning(
            "event refused; left pending for another attempt",
            extra={
                "stream": entry.stream,
                "entry_id": entry.entry_id,
                "deliveries": entry.deliveries,
                "error": _short(exc),
            },
        )
        return False

    def _apply_retrying(self, events: Sequence[Event]) -> None:
        """Apply in one transaction, waiting out database outages (capped exponential
        backoff with jitter) until it commits, the data is refused, or a stop is asked."""
        attempt = 0
        while True:
            try:
                apply_batch(self.engine, events)
            except SQLAlchemyError as e:
                if not is_transient(e):
                    self.db_ok = True  # it answered; it refused the data
                    raise
                self.db_ok = False
                self.metrics.db_errors.inc()
                delay = backoff_delay(attempt, self.opts.backoff_base_s, self.opts.backoff_cap_s)
                attempt += 1
                log.warning(
                    "database unavailable; will retry",
                    extra={"error": _short(e), "retry_in_s": round(delay, 3), "attempt": attempt},
                )
                if self._stop.wait(delay):
                    raise StopRequested from e
            else:
                if not self.db_ok:
                    log.info("database available", extra={"after_attempts": attempt})
                self.db_ok = True
                return

    def _dead_letter(self, dead: list[tuple[Entry, str, str]]) -> None:
        # XADD before XACK: a crash in between repeats the dead letter, never loses it.
        pipe = self.redis.pipeline(transaction=False)
        for entry, reason, detail in dead:
            pipe.xadd(
                keys.DEAD_LETTER_STREAM,
                {
                    "stream": entry.stream,
                    "entry_id": entry.entry_id,
                    "group": self.opts.group,
                    "consumer": self.opts.consumer,
                    "deliveries": str(entry.deliveries),
                    "reason": reason,
                    "detail": detail,
                    "fields": orjson.dumps(entry.fields or {}).decode(),
                },
            )
        pipe.execute()
        for entry, reason, detail in dead:
            self.metrics.dead_letters.labels(reason).inc()
            log.error(
                "event dead-lettered",
                extra={
                    "stream": entry.stream,
                    "entry_id": entry.entry_id,
                    "reason": reason,
                    "detail": detail,
                },
            )

    def _ack(self, entries: Sequence[Entry]) -> None:
        by_stream: dict[str, list[str]] = defaultdict(list)
        for e in entries:
            by_stream[e.stream].append(e.entry_id)
        if not by_stream:
            return
        pipe = self.redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.opts.group, *ids)
        pipe.execute()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:limit]
