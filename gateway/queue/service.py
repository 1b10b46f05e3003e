"""The waiting room: its typed API over the Lua scripts (join, status, leave, release, one
admission step, the draw) and the gateway's side of it (join and status of a user, answered
from the session's snapshot in memory). Redis errors surface as ``QueueUnavailable`` so
every caller fails closed: nobody is admitted (or told they are) unless Redis said so.

Per waiter, a status poll costs Redis nothing: the gateway holds the session's serving state
(``snapshot.py``), read once per gateway when it changes and at least every
``SNAPSHOT_MAX_AGE_S``, and knows the waiter's line number from its queue ticket (or from
its own join or first poll). Heartbeats are collected and written once per session per
``beat_interval_s`` (``flush_beats``). Joins, leaves and final states (expired, left) go
to Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis

from gateway.queue.draws import QueueDraws
from gateway.queue.facts import SessionFactsClient, epoch_ms, joining_opens_at, opens_in_s
from gateway.queue.memory import SNAPSHOT_MAX_AGE_S, QueueMemory
from gateway.queue.schemas import (
    QueuePolicy,
    QueueStatus,
    QueueView,
    SessionFacts,
    TickResult,
)
from gateway.queue.scripts import (
    HEARTBEAT_LANES,
    MEMBER_SCRIPTS,
    QueueScripts,
    member_keys,
    pipelined,
    script_keys,
)
from gateway.queue.views import (
    TICK_S,
    QueueUnavailable,
    burst_of,
    estimate_wait_s,
    member_of,
    to_int,
    to_str,
    view_of,
)
from shared.tokens import issue_admission_token
from svckit.errors import Conflict
from svckit.redis_client import REDIS_ERRORS
from svckit.redis_pipeline import AnyPipelined

# Re-exported: the admission loop, the router and tests import them from here.
__all__ = [
    "TICK_S",
    "QueueService",
    "QueueUnavailable",
    "burst_of",
    "estimate_wait_s",
    "member_of",
]

# How far one admission step may go: admissions, expired admissions, swept waiters.
MAX_ADMIT_PER_TICK = 100
EXPIRE_CHUNK = 200
SWEEP_CHUNK = 200
# Joins sent in one call of joins.lua (those arriving within one event-loop turn).
JOIN_BATCH = 256


class QueueService(QueueMemory, QueueDraws):
    """Join, status, leave and admission for every session, on one Redis client; with
    ``facts``, also the gateway's join and status of a user (``join_user``, ``status_of``)."""

    def __init__(
        self,
        *,
        redis: Redis,
        secret: str,
        heartbeat_timeout_s: float,
        admission_ttl_s: int,
        pipelined: AnyPipelined | None = None,
        facts: SessionFactsClient | None = None,
        snapshot_max_age_s: float = SNAPSHOT_MAX_AGE_S,
    ) -> None:
        self.redis = redis
        # The scripts go through the auto-pipelined client when there is one: redis-py's
        # per-call overhead (pool, retry wrapper, one write each) was the largest part of a
        # status poll's CPU in the gateway during the on-sale burst.
        self.pipelined = pipelined
        self.secret = secret
        self.admission_ttl_s = admission_ttl_s
        self.facts = facts
        # The heartbeat ring: LANES-1 buckets span the timeout (see common.lua).
        self.bucket_ms = max(1, math.ceil(heartbeat_timeout_s * 1000 / (HEARTBEAT_LANES - 1)))
        # Batched heartbeats reach Redis at most this late: well inside one bucket.
        self.beat_interval_s = min(1.0, self.bucket_ms / 4000)
        self.scripts = QueueScripts.register(redis)
        # Called after every join (the registry and the admission loop hear of the session).
        self.on_join: Callable[[int], Awaitable[None]] | None = None
        self._init_memory(snapshot_max_age_s)
        self._joining: dict[int, dict[str, tuple[str, asyncio.Future[QueueView]]]] = {}

    # --- the scripts -------------------------------------------------------------------------

    async def _run(
        self, script: str, session_id: int, args: list[object], member: str | None = None
    ) -> object:
        keys_ = member_keys(session_id, member) if member else script_keys(session_id)
        assert (script in MEMBER_SCRIPTS) == (member is not None)
        try:
            if self.pipelined is not None:
                return await pipelined(script)(self.pipelined, keys_, args)
            return await getattr(self.scripts, script)(keys=list(keys_), args=args)
        except REDIS_ERRORS as e:  # TimeoutError is an OSError
            raise QueueUnavailable(f"{type(e).__name__}: {e}") from e

    async def join(
        self,
        *,
        session_id: int,
        user_id: str,
        opens_ms: int = 0,
        pre_queue_opens_ms: int = 0,
    ) -> QueueView:
        """Take a place at the end of the line (or in the pre-queue before ``opens_ms``), or
        keep the one the user has (idempotent). State ``early`` before any window opens."""
        member = member_of(user_id)
        seed = secrets.token_hex(32)
        args: list[object] = [
            member,
            self.bucket_ms,
            "join",
            opens_ms,
            pre_queue_opens_ms,
            user_id,
            seed,
        ]
        view = view_of(await self._run("status", session_id, args, member))  # type: ignore[arg-type]
        self._remember(session_id, user_id, view)
        return view

    async def join_batched(self, *, session_id: int, user_id: str) -> QueueView:
        """A join once the line is open, sent with the other joins that arrive in the same
        event-loop turn (one ``joins.lua`` call for up to ``JOIN_BATCH``); anything but a
        plain new place goes through :meth:`join`."""
        member = member_of(user_id)
        pending = self._joining.get(session_id)
        if pending is None:
            pending = self._joining[session_id] = {}
            asyncio.get_running_loop().call_soon(self._send_joins, session_id)
        entry = pending.get(member)
        if entry is None:
            entry = pending[member] = (user_id, asyncio.get_running_loop().create_future())
        view = await asyncio.shield(entry[1])
        if view.state == "none":  # joins.lua declined: the full script decides
            return await self.join(session_id=session_id, user_id=user_id)
        self._remember(session_id, user_id, view)
        return view

    def _send_joins(self, session_id: int) -> None:
        pending = self._joining.pop(session_id, {})
        items = list(pending.items())
        for start in range(0, len(items), JOIN_BATCH):
            task = asyncio.ensure_future(self._joins(session_id, items[start : start + JOIN_BATCH]))
            task.add_done_callback(_retrieved)

    async def _joins(
        self, session_id: int, items: list[tuple[str, tuple[str, asyncio.Future[QueueView]]]]
    ) -> None:
        try:
            views = await self._join_many(session_id, [m for m, _ in items])
        except BaseException as e:
            # Every waiting join hears of it (a Redis error is a 503 for each).
            failure = e if isinstance(e, Exception) else QueueUnavailable("join cancelled")
            for _, (_, future) in items:
                if not future.done():
                    future.set_exception(failure)
            raise
        for (_, (_, future)), view in zip(items, views, strict=True):
            if not future.done():
                future.set_result(view)

    async def _join_many(self, session_id: int, members: list[str]) -> list[QueueView]:
        keys_ = [*script_keys(session_id), *(member_keys(session_id, m)[-1] for m in members)]
        try:
            if self.pipelined is not None:
                raw = await pipelined("joins")(self.pipelined, keys_, [self.bucket_ms, *members])
            else:
                raw = await self.scripts.joins(keys=keys_, args=[self.bucket_ms, *members])
        except REDIS_ERRORS as e:  # TimeoutError is an OSError
            raise QueueUnavailable(f"{type(e).__name__}: {e}") from e
        out: Sequence[object] = raw
        now_ms, version = to_int(out[0]), to_int(out[1])
        views = []
        for i in range(len(members)):
            state = to_str(out[4 + 3 * i])
            views.append(
                QueueView(
                    "none" if state == "slow" else state,  # type: ignore[arg-type]
                    to_int(out[5 + 3 * i]),
                    to_int(out[6 + 3 * i]),
                    0,
                    0,
                    0,
                    0,
                    0,
                    now_ms,
                    version,
                )
            )
        return views

    async def status(self, *, session_id: int, user_id: str, beat: bool = True) -> QueueView:
        """Where the user stands, read from Redis (the authoritative answer); with ``beat``
        it is also the waiter's heartbeat."""
        member = member_of(user_id)
        args: list[object] = [member, self.bucket_ms, "beat" if beat else "peek", 0, 0, "", ""]
        view = view_of(await self._run("status", session_id, args, member))  # type: ignore[arg-type]
        self._remember(session_id, user_id, view)
        return view

    async def leave(self, *, session_id: int, user_id: str) -> bool:
        """Leave the line or give back an admission; True if the user held anything."""
        member = member_of(user_id)
        raw = await self._run("leave", session_id, [member], member)
        self._lines.get(session_id, {}).pop(user_id, None)
        self._stale.add(session_id)
        return any(to_int(v) for v in raw)  # type: ignore[attr-defined]

    async def release(self, *, session_id: int, user_id: str) -> bool:
        """Free the user's slot (their reservation was confirmed); True if one was held."""
        member = member_of(user_id)
        return to_int(await self._run("release", session_id, [member], member)) == 1

    async def tick(self, *, session_id: int, policy: QueuePolicy, opens_ms: int = 0) -> TickResult:
        """One atomic admission step for a session (safe to race from many instances);
        at ``opens_ms`` it closes the pre-queue."""
        raw = await self._run(
            "tick",
            session_id,
            [
                policy.max_active,
                repr(float(policy.admit_per_second)),
                burst_of(policy),
                self.admission_ttl_s,
                self.bucket_ms,
                SWEEP_CHUNK,
                EXPIRE_CHUNK,
                MAX_ADMIT_PER_TICK,
                opens_ms,
            ],
        )
        n = [to_int(v) for v in raw]  # type: ignore[attr-defined]
        result = TickResult(
            admitted=n[0],
            expired_admissions=n[1],
            expired_waiters=n[2],
            active=n[3],
            waiting=n[4],
            version=n[5],
            next_ms=n[6],
            sold_out=n[7] == 1,
            pre_queue=n[8],
            drawn=n[9] > 0,
        )
        self.changed(session_id, result.version)
        return result

    # --- the gateway's join and status of a user ----------------------------------------------

    def _facts(self) -> SessionFactsClient:
        if self.facts is None:
            raise RuntimeError("this QueueService was built without session facts")
        return self.facts

    async def policy_of(self, session_id: int) -> QueuePolicy:
        """The session's policy for the wait estimate: a stale or default one is better
        than no status."""
        facts = self._facts()
        try:
            return (await facts.get(session_id)).policy
        except Exception:  # AppError: api_server away
            cached = facts.cached(session_id)
            return cached.policy if cached else facts.default_policy

    async def join_user(self, *, session_id: int, user_id: str) -> QueueStatus:
        """Join (or re-join, keeping the place) and return the caller's status; 404 for an
        unknown session, 409 (with ``opens_at``) before joining opens."""
        facts = await self._facts().get(session_id)  # unknown session → 404
        if opens_in_s(facts, datetime.now(UTC)) > 0:
            raise _too_early(facts)
        if facts.booking_opens_at <= datetime.now(UTC):
            view = await self.join_batched(session_id=session_id, user_id=user_id)
        else:
            view = await self.join(
                session_id=session_id,
                user_id=user_id,
                opens_ms=epoch_ms(facts.booking_opens_at),
                pre_queue_opens_ms=epoch_ms(facts.pre_queue_opens_at),
            )
        if view.state == "early":  # Redis's clock is a little behind ours
            raise _too_early(facts)
        self._stale.add(session_id)
        if self.on_join is not None:
            await self.on_join(session_id)
        snap = self._snapshots.get(session_id)
        if view.state == "waiting" and snap is not None:
            # The join script skips the slot and rate reads; the snapshot has them.
            view = dataclasses.replace(
                view,
                active=snap.active,
                alog_len=snap.alog_len,
                alog_oldest_ms=snap.alog_oldest_ms,
            )
        return self.render(view, session_id=session_id, user_id=user_id, policy=facts.policy)

    async def status_of(
        self, *, session_id: int, user_id: str, ticket: str | None = None
    ) -> QueueStatus | None:
        """The caller's status (a heartbeat); None for a user without a place."""
        view = await self.peek(session_id=session_id, user_id=user_id, ticket=ticket)
        if view.state == "none":
            return None
        policy = await self.policy_of(session_id)
        return self.render(view, session_id=session_id, user_id=user_id, policy=policy)

    def render(
        self, view: QueueView, *, session_id: int, user_id: str, policy: QueuePolicy
    ) -> QueueStatus:
        """The public ``QueueStatus`` of a view; admitted users get their signed token."""
        if view.state == "waiting":
            return QueueStatus(
                session_id=session_id,
                status="waiting",
                position=view.rank + 1,
                ahead=view.rank,
                estimated_wait_s=estimate_wait_s(view, policy),
                admission_token=None,
                admission_expires_at=None,
                draw_rank=view.draw_rank,
            )
        if view.state == "admitted":
            # Issued from the stored admission time, so every copy expires together with the
            # admission itself.
            token, exp = issue_admission_token(
                secret=self.secret,
                user_id=user_id,
                session_id=session_id,
                queue_position=view.seq,
                ttl_s=view.expires_s - view.admitted_s,
                now=view.admitted_s,
            )
            return QueueStatus(
                session_id=session_id,
                status="admitted",
                position=None,
                ahead=0,
                estimated_wait_s=0.0,
                admission_token=token,
                admission_expires_at=datetime.fromtimestamp(exp, tz=UTC),
                draw_rank=view.draw_rank,
            )
        if view.state in ("none", "early"):
            raise ValueError("a user without a place has no status")
        return QueueStatus(
            session_id=session_id,
            status=view.state,
            position=None,
            ahead=0,
            estimated_wait_s=None,
            admission_token=None,
            admission_expires_at=None,
            draw_rank=view.draw_rank,
        )


def _too_early(facts: SessionFacts) -> Conflict:
    if facts.pre_queue_opens_at is not None:
        detail = "the pre-queue of this session has not opened yet"
    else:
        detail = "booking for this session has not opened yet"
    return Conflict(detail, opens_at=joining_opens_at(facts).astimezone(UTC).isoformat())


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # errors went to the waiting joins
