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
import base64
import dataclasses
import hashlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis

from gateway.queue.facts import SessionFactsClient, epoch_ms, joining_opens_at, opens_in_s
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
from gateway.queue.snapshot import Snapshot
from shared import keys
from shared.draw import commitment, draw_order
from shared.schemas.queue import QueueDraw
from shared.tokens import issue_admission_token, issue_queue_ticket, verify_queue_ticket
from svckit.errors import Conflict, NotFound
from svckit.redis_client import REDIS_ERRORS
from svckit.redis_pipeline import AnyPipelined
from svckit.single_flight import SingleFlight

# How far one admission step may go: admissions, expired admissions, swept waiters.
MAX_ADMIT_PER_TICK = 100
EXPIRE_CHUNK = 200
SWEEP_CHUNK = 200
# The admission loop's period; the rate limiter's burst is one period's worth of admissions.
TICK_S = 0.05
# A gateway's snapshot of a session is read again after this long even when nothing told it
# the session changed (a change on another gateway is seen by this one's next tick anyway).
SNAPSHOT_MAX_AGE_S = 0.25
# Heartbeats written per script call, and the draw's entrants placed per call.
BEAT_CHUNK = 4000
DRAW_CHUNK = 1000
DRAW_LOCK_MS = 60_000
# Joins sent in one call of joins.lua (those arriving within one event-loop turn).
JOIN_BATCH = 256
# Line numbers a gateway remembers per session before it starts over (memory bound).
MAX_REMEMBERED = 4_000_000


class QueueUnavailable(Exception):
    """Redis did not answer; the queue cannot say anything reliable."""


def member_of(user_id: str) -> str:
    """The compact queue member of a user: 72 bits of BLAKE2b, base64url (12 chars).
    72 bits make a collision among a million waiters a ~1e-10 event (user ids are
    server-issued, not chosen)."""
    raw = hashlib.blake2b(user_id.encode(), digest_size=9).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def burst_of(policy: QueuePolicy) -> int:
    """The rate limiter's burst: one loop period's admissions, at least one. Any window of
    ``w`` seconds then holds at most ``floor(rate * w) + burst`` admissions."""
    return max(1, math.floor(policy.admit_per_second * TICK_S))


def estimate_wait_s(view: QueueView, policy: QueuePolicy) -> float | None:
    """Seconds until a waiter at ``view.rank`` is admitted. The first free slots go at the
    configured rate; beyond them admission waits on slots freeing, measured as the rate of
    recent admissions (which, with the slots full, is the rate at which they free)."""
    position = view.rank + 1
    rate = policy.admit_per_second
    free = max(0, policy.max_active - view.active)
    if position <= free:
        return round(position / rate, 1)
    if view.alog_len < 2:
        return None  # nothing measured yet and no free slot: no honest estimate
    elapsed_s = max((view.now_ms - view.alog_oldest_ms) / 1000, view.alog_len / rate)
    measured = view.alog_len / elapsed_s
    return round(free / rate + (position - free) / measured, 1)


def _int(value: object) -> int:
    if isinstance(value, bytes):
        value = value.decode()
    return int(value)  # type: ignore[call-overload,no-any-return]


_STATES = frozenset(("pre_queue", "waiting", "admitted", "expired", "sold_out", "none", "early"))


def _view(raw: Sequence[object]) -> QueueView:
    state = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    if state not in _STATES:
        raise QueueUnavailable(f"unexpected queue state {state!r}")
    n = [_int(v) for v in raw[1:]]
    lno, base, drawn = n[0], n[9], n[10]
    return QueueView(
        state=state,  # type: ignore[arg-type]
        seq=lno,
        rank=n[1],
        admitted_s=n[2],
        expires_s=n[3],
        active=n[4],
        alog_len=n[5],
        alog_oldest_ms=n[6],
        now_ms=n[7],
        version=n[8],
        draw_rank=lno if drawn and 0 < lno <= base else None,
    )


class QueueService:
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
        self.snapshot_max_age_s = snapshot_max_age_s
        # The heartbeat ring: LANES-1 buckets span the timeout (see common.lua).
        self.bucket_ms = max(1, math.ceil(heartbeat_timeout_s * 1000 / (HEARTBEAT_LANES - 1)))
        # Batched heartbeats reach Redis at most this late: well inside one bucket.
        self.beat_interval_s = min(1.0, self.bucket_ms / 4000)
        self.scripts = QueueScripts.register(redis)
        # Called after every join (the registry and the admission loop hear of the session).
        self.on_join: Callable[[int], Awaitable[None]] | None = None
        self._snapshots: dict[int, Snapshot] = {}
        self._stale: set[int] = set()
        self._refreshing: SingleFlight[int, Snapshot] = SingleFlight()
        self._lines: dict[int, dict[str, int]] = {}
        self._beats: dict[int, set[int]] = {}
        self._beats_due = 0.0
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
        view = _view(await self._run("status", session_id, args, member))  # type: ignore[arg-type]
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
        now_ms, version = _int(out[0]), _int(out[1])
        views = []
        for i in range(len(members)):
            state = _str(out[4 + 3 * i])
            views.append(
                QueueView(
                    "none" if state == "slow" else state,  # type: ignore[arg-type]
                    _int(out[5 + 3 * i]),
                    _int(out[6 + 3 * i]),
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
        view = _view(await self._run("status", session_id, args, member))  # type: ignore[arg-type]
        self._remember(session_id, user_id, view)
        return view

    async def leave(self, *, session_id: int, user_id: str) -> bool:
        """Leave the line or give back an admission; True if the user held anything."""
        member = member_of(user_id)
        raw = await self._run("leave", session_id, [member], member)
        self._lines.get(session_id, {}).pop(user_id, None)
        self._stale.add(session_id)
        return any(_int(v) for v in raw)  # type: ignore[attr-defined]

    async def release(self, *, session_id: int, user_id: str) -> bool:
        """Free the user's slot (their reservation was confirmed); True if one was held."""
        member = member_of(user_id)
        return _int(await self._run("release", session_id, [member], member)) == 1

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
        n = [_int(v) for v in raw]  # type: ignore[attr-defined]
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

    # --- the pre-queue's draw ----------------------------------------------------------------

    async def draw(self, *, session_id: int, shuffle: bool) -> bool:
        """Place the closed pre-queue in line: by HMAC-SHA256(seed, user id) ascending when
        ``shuffle``, else in join order. One gateway at a time (a lock); the script is
        idempotent, so a draw cut short is redone whole. False if another gateway holds it."""
        lock = keys.queue_draw_lock(session_id)
        token = secrets.token_hex(8)
        meta = script_keys(session_id)[1]
        try:
            if not await self.redis.set(lock, token, nx=True, px=DRAW_LOCK_MS):
                return False
            try:
                seed_hex = await self.redis.hget(meta, "seed")
                entrants = await self.redis.hgetall(script_keys(session_id)[5])
                pre = {_str(u): _int(p) for u, p in entrants.items()}
                if shuffle and seed_hex:
                    order = draw_order(bytes.fromhex(_str(seed_hex)), pre)
                else:
                    order = sorted(pre, key=pre.__getitem__)
                for start in range(0, len(order), DRAW_CHUNK):
                    chunk = order[start : start + DRAW_CHUNK]
                    members = [member_of(u) for u in chunk]
                    last = start + DRAW_CHUNK >= len(order)
                    args: list[str | int] = [self.bucket_ms, start + 1, len(order) if last else 0]
                    for u, m in zip(chunk, members, strict=True):
                        args += [m, pre[u]]
                    await self.scripts.draw(
                        keys=[
                            *script_keys(session_id),
                            *(member_keys(session_id, m)[-1] for m in members),
                        ],
                        args=args,
                    )
            finally:
                if _str(await self.redis.get(lock) or b"") == token:
                    await self.redis.delete(lock)
        except REDIS_ERRORS as e:  # TimeoutError is an OSError
            raise QueueUnavailable(f"{type(e).__name__}: {e}") from e
        self._stale.add(session_id)
        return True

    async def draw_of(self, *, session_id: int) -> QueueDraw:
        """The public record of a session's draw (404 without a pre-queue): the seed's
        commitment once the pre-queue is open, the seed once booking is open."""
        facts = await self._facts().get(session_id)
        if facts.pre_queue_opens_at is None:
            raise NotFound("this session has no pre-queue")
        now = datetime.now(UTC)
        if now < facts.pre_queue_opens_at:
            return QueueDraw(session_id=session_id, commitment=None, seed=None, drawn=0)
        meta = script_keys(session_id)[1]
        try:
            # The seed is drawn now if no entrant drew it yet; HSETNX keeps the first.
            await self.redis.hsetnx(meta, "seed", secrets.token_hex(32))
            seed_hex, drawn = await self.redis.hmget(meta, ["seed", "drawn"])
        except REDIS_ERRORS as e:  # TimeoutError is an OSError
            raise QueueUnavailable(f"{type(e).__name__}: {e}") from e
        seed = bytes.fromhex(_str(seed_hex))
        return QueueDraw(
            session_id=session_id,
            commitment=commitment(seed),
            seed=seed.hex() if now >= facts.booking_opens_at else None,
            drawn=_int(drawn or 0),
        )

    # --- the snapshot and heartbeats ---------------------------------------------------------

    def changed(self, session_id: int, version: int) -> None:
        """The session's change counter is ``version``: the snapshot is stale if older."""
        snap = self._snapshots.get(session_id)
        if snap is None or snap.version != version:
            self._stale.add(session_id)

    async def snapshot(self, session_id: int, *, fresh: bool = False) -> Snapshot:
        """The session's serving state: cached, read again when stale, older than the max
        age, or ``fresh`` is asked; concurrent readers share one read."""
        snap = self._snapshots.get(session_id)
        if (
            snap is not None
            and not fresh
            and session_id not in self._stale
            and time.monotonic() - snap.taken_at < self.snapshot_max_age_s
        ):
            return snap
        return await self._refreshing.run(session_id, self._read_snapshot)

    def cached_snapshot(self, session_id: int) -> Snapshot | None:
        """The snapshot held now, however old (None before the first read)."""
        return self._snapshots.get(session_id)

    async def _read_snapshot(self, session_id: int) -> Snapshot:
        self._stale.discard(session_id)  # a change from now on marks it stale again
        previous = self._snapshots.get(session_id)
        args: list[object] = [
            previous.dver if previous else -1,
            previous.known_batch() if previous else 0,
        ]
        raw = await self._run("snapshot", session_id, args)
        snap = Snapshot.parse(raw, previous)  # type: ignore[arg-type]
        if previous is not None and previous.gen != snap.gen:
            # Redis lost the line (a flush, a restart without persistence): the line
            # numbers remembered here name places of the old line, maybe other people's in
            # the new one. Forget them: those users are asked of Redis (and told to join
            # again) instead of being answered from memory.
            self._lines.pop(session_id, None)
            self._beats.pop(session_id, None)
        self._snapshots[session_id] = snap
        return snap

    def _remember(self, session_id: int, user_id: str, view: QueueView) -> None:
        lines = self._lines.setdefault(session_id, {})
        if view.state == "none":
            lines.pop(user_id, None)
            return
        if view.state == "pre_queue":
            line = -1
        elif view.seq > 0:
            line = view.seq
        else:
            return
        if len(lines) >= MAX_REMEMBERED:
            lines.clear()
        lines[user_id] = line

    def line_of(self, session_id: int, user_id: str) -> int | None:
        """The user's line number as this gateway knows it (-1: in the pre-queue)."""
        return self._lines.get(session_id, {}).get(user_id)

    def remember_line(self, session_id: int, user_id: str, line: int) -> None:
        """Note a line number the user proved (a valid queue ticket)."""
        lines = self._lines.setdefault(session_id, {})
        if user_id not in lines:
            if len(lines) >= MAX_REMEMBERED:
                lines.clear()
            lines[user_id] = line

    def _from_snapshot(self, snap: Snapshot, line: int) -> QueueView | None:
        """A user's view from the snapshot; None where only Redis can tell (a place gone, an
        admission the snapshot has no batch for, a pre-queue entrant after the draw)."""
        common = (snap.active, snap.alog_len, snap.alog_oldest_ms, snap.redis_now_ms())
        if line < 0:
            if snap.drawn or (snap.closed and snap.base == 0):
                return None
            return QueueView("pre_queue", 0, 0, 0, 0, *common, snap.version)
        # A line number past the snapshot's last joined since it was read (a ticket or a
        # join proves it was given out): its rank counts the drop-outs the snapshot knows,
        # as stale as every other answer from it, instead of a Redis read per new joiner.
        if snap.drops.is_set(line):
            return None
        draw_rank = line if snap.drawn and line <= snap.base else None
        if line <= snap.head:
            batch = snap.batch_of(line)
            if batch is None or not snap.drops.covers(line) or batch.expires_s * 1000 <= common[3]:
                return None
            return QueueView(
                "admitted",
                line,
                0,
                batch.admitted_s,
                batch.expires_s,
                *common,
                snap.version,
                draw_rank,
            )
        if line <= snap.base and not snap.drawn:
            return None
        if snap.sold_out:
            return QueueView("sold_out", line, 0, 0, 0, *common, snap.version, draw_rank)
        return QueueView("waiting", line, snap.rank(line), 0, 0, *common, snap.version, draw_rank)

    def ticket_line(self, session_id: int, user_id: str, ticket: str) -> int | None:
        """The line number of a queue ticket valid for the line as last read here (None:
        forged, another user's or session's, or of a line Redis has since lost)."""
        snap = self._snapshots.get(session_id)
        return verify_queue_ticket(
            ticket,
            secret=self.secret,
            user_id=user_id,
            session_id=session_id,
            gen=snap.gen if snap else 0,
        )

    def ticket_for(self, session_id: int, user_id: str) -> str | None:
        """A queue ticket for the user's remembered line, bound to the line's generation."""
        line = self.line_of(session_id, user_id)
        snap = self._snapshots.get(session_id)
        if line is None or snap is None:
            return None
        return issue_queue_ticket(
            secret=self.secret, user_id=user_id, session_id=session_id, line=line, gen=snap.gen
        )

    async def peek(
        self,
        *,
        session_id: int,
        user_id: str,
        ticket: str | None = None,
        line: int | None = None,
    ) -> QueueView:
        """Where the user stands, from the snapshot where it can tell (a heartbeat for a
        waiter, written with the next batch), else from Redis. ``ticket``: the user's queue
        ticket; ``line``: a line number the caller already verified."""
        if line is not None:
            self.remember_line(session_id, user_id, line)
        elif ticket:
            # Checked against the snapshot it is answered from: its generation must match.
            await self.snapshot(session_id)
            line = self.ticket_line(session_id, user_id, ticket)
            if line is not None:
                self.remember_line(session_id, user_id, line)
        if line is None:
            line = self.line_of(session_id, user_id)
        if line is not None:
            snap = await self.snapshot(session_id)
            view = self._from_snapshot(snap, line)
            if view is not None:
                if view.state in ("waiting", "sold_out"):  # a sold-out waiter keeps its place
                    self._beats.setdefault(session_id, set()).add(line)
                return view
        return await self.status(session_id=session_id, user_id=user_id)

    async def flush_beats(self, *, force: bool = False) -> int:
        """Write the heartbeats collected since the last flush, one call per session (and
        per ``BEAT_CHUNK``), at most every ``beat_interval_s``; returns how many."""
        now = time.monotonic()
        if not force and now < self._beats_due:
            return 0
        self._beats_due = now + self.beat_interval_s
        written = 0
        for session_id in list(self._beats):
            lines = sorted(self._beats.pop(session_id))
            try:
                for start in range(0, len(lines), BEAT_CHUNK):
                    chunk = lines[start : start + BEAT_CHUNK]
                    await self._run("beat", session_id, [self.bucket_ms, *chunk])
                    written += len(chunk)
            except QueueUnavailable:
                self._beats.setdefault(session_id, set()).update(lines)  # next time
                raise
        return written

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


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
