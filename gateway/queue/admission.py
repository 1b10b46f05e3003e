"""The admission loop every gateway instance runs, and what rides along with it: freeing
slots on ``reservation.completed`` events, metrics, and waking local SSE streams.

Why a loop per instance: admission must happen even when nobody polls. The tick script is
atomic, so instances racing each other are safe (no one admitted twice, no slot given twice);
extra instances only add ticks, and the rate bound lives in Redis (GCRA on server time).

Why no Pub/Sub for SSE: every instance ticks every registered session anyway, and each tick
returns the session's change counter (``ver``, bumped by joins, admissions, expiries,
leaves, releases and sold-out changes from any instance). When it moves, the service's
snapshot of the session goes stale and the loop tells the notifier (notifier.py), which
reads the snapshot again (once) and wakes this instance's SSE streams of that session; every
stream computes its status from it in memory. So a change reaches a stream within one tick
(50 ms) plus the fan-out, with one Redis read per instance per change.

The loop also writes the heartbeats the service collected (one call per session per
interval), and at opening places the pre-queue in line by its draw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.queue.facts import SessionFactsClient, epoch_ms
from gateway.queue.notifier import QueueNotifier
from gateway.queue.service import TICK_S, QueueService, QueueUnavailable
from shared import keys
from shared.events import ReservationCompleted, parse_event
from svckit.errors import AppError
from svckit.redis_client import REDIS_ERRORS
from svckit.single_flight import SingleFlight

log = logging.getLogger("boxoffice.gateway.queue")

# Sessions without a join for this long drop out of the registry (and out of the loop).
REGISTRY_RETENTION_MS = 6 * 3600 * 1000
# Re-read the registry this often; re-register a session on join at most this often.
REGISTRY_REFRESH_S = 1.0
# Stream entries read per session per tick; pending entries of dead consumers are taken over
# after this idle time.
EVENTS_BATCH = 200
EVENTS_CLAIM_IDLE_MS = 30_000
EVENTS_CLAIM_EVERY_S = 5.0
# A session with nobody waiting or admitted is ticked this often instead of every period
# (a join on this instance wakes it at once; one on another instance waits at most this).
IDLE_TICK_S = 0.5


class QueueMetrics:
    """Per-session queue metrics in the gateway's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.waiting = Gauge(
            "boxoffice_queue_waiting",
            "Users waiting in a session's queue.",
            ["session"],
            registry=registry,
        )
        self.admitted = Gauge(
            "boxoffice_queue_admitted",
            "Admitted-and-unfinished users (slots in use) of a session.",
            ["session"],
            registry=registry,
        )
        self.admissions = Counter(
            "boxoffice_queue_admissions_total",
            "Users admitted by this instance's admission loop (rate() = admissions/s).",
            ["session"],
            registry=registry,
        )
        self.expirations = Counter(
            "boxoffice_queue_expirations_total",
            "Places lost: silent waiters (kind=waiter) and expired admissions (kind=admission).",
            ["session", "kind"],
            registry=registry,
        )
        self.released = Counter(
            "boxoffice_queue_released_total",
            "Slots freed by reservation.completed events.",
            ["session"],
            registry=registry,
        )


class SessionRegistry:
    """The sessions that have a queue (``keys.queue_sessions()``)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._registered: dict[int, float] = {}
        self._registering: SingleFlight[int, None] = SingleFlight()

    async def register(self, session_id: int) -> None:
        """Note a join (at most once per second per session from this instance). Joins
        arriving while it is being noted wait for that one write: at opening thousands
        arrive together, and one write each would queue them all on the Redis pool."""
        if self._registered.get(session_id, 0.0) > time.monotonic():
            return
        await self._registering.run(session_id, self._register)

    async def _register(self, session_id: int) -> None:
        try:
            await self.redis.zadd(keys.queue_sessions(), {str(session_id): int(time.time() * 1000)})
        except REDIS_ERRORS as e:
            raise QueueUnavailable(str(e)) from e
        self._registered[session_id] = time.monotonic() + REGISTRY_REFRESH_S

    async def sessions(self) -> list[int]:
        """Sessions joined within the retention time."""
        cutoff = int(time.time() * 1000) - REGISTRY_RETENTION_MS
        await self.redis.zremrangebyscore(keys.queue_sessions(), "-inf", cutoff)
        raw = await self.redis.zrangebyscore(keys.queue_sessions(), cutoff, "+inf")
        return [int(v) for v in raw]  # type: ignore[arg-type]


class AdmissionLoop:
    """Ticks every registered session: admits, expires, sweeps, frees released slots."""

    def __init__(
        self,
        *,
        service: QueueService,
        facts: SessionFactsClient,
        registry: SessionRegistry,
        notifier: QueueNotifier,
        metrics: QueueMetrics,
        interval_s: float = TICK_S,
        consumer: str | None = None,
    ) -> None:
        self.service = service
        self.redis = service.redis
        self.facts = facts
        self.registry = registry
        self.notifier = notifier
        self.metrics = metrics
        self.interval_s = interval_s
        self.consumer = consumer or f"gw-{uuid.uuid4().hex[:12]}"
        self._groups: set[int] = set()
        self._next_claim: dict[int, float] = {}
        self._due: dict[int, float] = {}
        self._woken: set[int] = set()
        # The last Redis failure of a round, None once a round succeeds (for /readyz).
        self.failing: str | None = None

    def wake(self, session_id: int) -> None:
        """Tick this session in the next round (a user just joined it here)."""
        self._due.pop(session_id, None)
        self._woken.add(session_id)

    async def run(self) -> None:
        """Forever (until cancelled); a failing round is logged and retried."""
        sessions: set[int] = set()
        next_refresh = 0.0
        while True:
            sleep_s = self.interval_s
            try:
                if time.monotonic() >= next_refresh:
                    sessions = set(await self.registry.sessions())
                    if not sessions:
                        self.failing = None  # no session's tick left to fail
                    next_refresh = time.monotonic() + REGISTRY_REFRESH_S
                sessions |= self._woken
                self._woken.clear()
                now = time.monotonic()
                for session_id in sorted(sessions):
                    if self._due.get(session_id, 0.0) > now:
                        continue
                    wait_ms = await self.step(session_id)
                    if wait_ms > 0:
                        sleep_s = min(sleep_s, wait_ms / 1000)
                await self.service.flush_beats()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bad round must not end admission on this instance
                log.exception("queue admission round failed")
                self.failing = f"{type(e).__name__}: {e}"
                sleep_s = 1.0
            await asyncio.sleep(max(sleep_s, 0.002))

    async def step(self, session_id: int) -> int:
        """One round for one session; returns ms until the rate allows the next admission
        (0 if not rate-limited)."""
        try:
            facts = await self.facts.get(session_id)
        except AppError:
            # Unknown or unreachable facts: admit nobody (fail closed), retry a bit later.
            self._due[session_id] = time.monotonic() + 4 * IDLE_TICK_S
            return 0
        try:
            await self.drain_events(session_id)
            pre_queue = facts.pre_queue_opens_at is not None
            opens_ms = epoch_ms(facts.booking_opens_at) if pre_queue else 0
            result = await self.service.tick(
                session_id=session_id, policy=facts.policy, opens_ms=opens_ms
            )
            if result.pre_queue and not result.drawn:
                await self.service.draw(session_id=session_id, shuffle=facts.shuffle_at_open)
        except QueueUnavailable as e:
            log.warning("queue tick failed for session %s", session_id)
            self.failing = str(e)
            return 0
        self.failing = None
        label = str(session_id)
        self.metrics.waiting.labels(label).set(result.waiting)
        self.metrics.admitted.labels(label).set(result.active)
        if result.admitted:
            self.metrics.admissions.labels(label).inc(result.admitted)
        if result.expired_waiters:
            self.metrics.expirations.labels(label, "waiter").inc(result.expired_waiters)
        if result.expired_admissions:
            self.metrics.expirations.labels(label, "admission").inc(result.expired_admissions)
        self.notifier.changed(session_id, result.version)
        if result.waiting == 0 and result.active == 0:
            self._due[session_id] = time.monotonic() + IDLE_TICK_S
        else:
            self._due.pop(session_id, None)
        return max(result.next_ms, 0)

    async def _read_events(
        self, session_id: int, stream: str
    ) -> list[tuple[object, dict[bytes, bytes]]]:
        """The session's idle pending entries (when due) and new ones, for this consumer."""
        if session_id not in self._groups:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                # From the start of the stream: an event written before the group existed
                # must still free its slot (freeing is idempotent).
                await self.redis.xgroup_create(
                    stream, keys.GATEWAY_QUEUE_GROUP, id="0", mkstream=True
                )
            self._groups.add(session_id)
        entries: list[tuple[object, dict[bytes, bytes]]] = []
        if time.monotonic() >= self._next_claim.get(session_id, 0.0):
            self._next_claim[session_id] = time.monotonic() + EVENTS_CLAIM_EVERY_S
            claimed = await self.redis.xautoclaim(
                stream,
                keys.GATEWAY_QUEUE_GROUP,
                self.consumer,
                EVENTS_CLAIM_IDLE_MS,
                start_id="0-0",
                count=EVENTS_BATCH,
            )
            entries.extend(claimed[1])
        reply: Any = await self.redis.xreadgroup(
            keys.GATEWAY_QUEUE_GROUP, self.consumer, {stream: ">"}, count=EVENTS_BATCH
        )
        for _, batch in reply or []:
            entries.extend(batch)
        return entries

    async def drain_events(self, session_id: int) -> int:
        """Free the slots of users whose reservation completed (the gateway's consumer group
        on the session's event stream); entries are acknowledged after their slot is freed."""
        stream = keys.events_stream(session_id)
        try:
            try:
                entries = await self._read_events(session_id, stream)
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                # The group (or the whole stream) is gone: Redis lost its data (a restart
                # without persistence, a failover to a stale replica, a flush). Create it
                # again and read on; a group remembered forever would stop every release.
                log.warning("queue consumer group missing on %s; creating it again", stream)
                self._groups.discard(session_id)
                self._next_claim.pop(session_id, None)
                entries = await self._read_events(session_id, stream)
        except REDIS_ERRORS as e:
            raise QueueUnavailable(str(e)) from e
        freed = 0
        done: list[object] = []
        for entry_id, fields in entries:
            done.append(entry_id)
            if not fields:
                continue  # deleted entry
            try:
                event = parse_event(fields)
            except ValidationError:
                log.warning("unreadable event %r on %s", entry_id, stream)
            else:
                if isinstance(event, ReservationCompleted) and await self.service.release(
                    session_id=session_id, user_id=event.user_id
                ):
                    freed += 1
        if done:
            try:
                await self.redis.xack(stream, keys.GATEWAY_QUEUE_GROUP, *done)  # type: ignore[arg-type]
            except REDIS_ERRORS as e:
                raise QueueUnavailable(str(e)) from e
        if freed:
            self.metrics.released.labels(str(session_id)).inc(freed)
        return freed
