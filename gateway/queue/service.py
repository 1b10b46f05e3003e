"""The waiting room's typed API over its Lua scripts: join, status, leave, release, and one
admission step. Redis errors surface as ``QueueUnavailable`` so every caller fails closed:
nobody is admitted (or told they are) unless Redis said so."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis

from gateway.queue.schemas import QueuePolicy, QueueStatus, QueueView, TickResult, ViewState
from gateway.queue.scripts import HEARTBEAT_LANES, QueueScripts, pipelined, script_keys
from shared.tokens import issue_admission_token
from svckit.redis_client import REDIS_ERRORS
from svckit.redis_pipeline import AnyPipelined

# How far one admission step may go: admissions, expired admissions, swept waiters.
MAX_ADMIT_PER_TICK = 100
EXPIRE_CHUNK = 200
SWEEP_CHUNK = 200
# The admission loop's period; the rate limiter's burst is one period's worth of admissions.
TICK_S = 0.05


class QueueUnavailable(Exception):
    """Redis did not answer; the queue cannot say anything reliable."""


def member_of(user_id: str) -> str:
    """The compact queue member of a user: 72 bits of BLAKE2b, base64url (12 chars).
    Short members keep a waiter under 200 bytes of Redis memory; 72 bits make a collision
    among a million waiters a ~1e-10 event (user ids are server-issued, not chosen)."""
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


def _view(raw: Sequence[object]) -> QueueView:
    state = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    n = [_int(v) for v in raw[1:]]
    return QueueView(
        state=_state(state),
        seq=n[0],
        rank=n[1],
        admitted_s=n[2],
        expires_s=n[3],
        active=n[4],
        alog_len=n[5],
        alog_oldest_ms=n[6],
        now_ms=n[7],
        version=n[8],
    )


def _state(value: str) -> ViewState:
    if value in ("waiting", "admitted", "expired", "sold_out", "none"):
        return value  # type: ignore[return-value]
    raise QueueUnavailable(f"unexpected queue state {value!r}")


class QueueService:
    """Join, status, leave and admission for every session, on one Redis client."""

    def __init__(
        self,
        *,
        redis: Redis,
        secret: str,
        heartbeat_timeout_s: float,
        admission_ttl_s: int,
        pipelined: AnyPipelined | None = None,
    ) -> None:
        self.redis = redis
        # The scripts go through the auto-pipelined client when there is one: redis-py's
        # per-call overhead (pool, retry wrapper, one write each) was the largest part of a
        # status poll's CPU in the gateway during the on-sale burst.
        self.pipelined = pipelined
        self.secret = secret
        self.admission_ttl_s = admission_ttl_s
        # The heartbeat ring: LANES-1 buckets span the timeout (see common.lua).
        self.bucket_ms = max(1, math.ceil(heartbeat_timeout_s * 1000 / (HEARTBEAT_LANES - 1)))
        self.scripts = QueueScripts.register(redis)

    async def _run(self, script: str, session_id: int, args: list[object]) -> object:
        try:
            if self.pipelined is not None:
                return await pipelined(script)(self.pipelined, script_keys(session_id), args)
            return await getattr(self.scripts, script)(
                keys=list(script_keys(session_id)), args=args
            )
        except REDIS_ERRORS as e:  # TimeoutError is an OSError
            raise QueueUnavailable(f"{type(e).__name__}: {e}") from e

    async def join(self, *, session_id: int, user_id: str) -> QueueView:
        """Take a place at the end of the line, or keep the one the user has (idempotent)."""
        raw = await self._run("status", session_id, [member_of(user_id), self.bucket_ms, "join"])
        return _view(raw)  # type: ignore[arg-type]

    async def status(self, *, session_id: int, user_id: str, beat: bool = True) -> QueueView:
        """Where the user stands; with ``beat`` it is also the waiter's heartbeat."""
        mode = "beat" if beat else "peek"
        raw = await self._run("status", session_id, [member_of(user_id), self.bucket_ms, mode])
        return _view(raw)  # type: ignore[arg-type]

    async def leave(self, *, session_id: int, user_id: str) -> bool:
        """Leave the line or give back an admission; True if the user held anything."""
        raw = await self._run("leave", session_id, [member_of(user_id)])
        return any(_int(v) for v in raw)  # type: ignore[attr-defined]

    async def release(self, *, session_id: int, user_id: str) -> bool:
        """Free the user's slot (their reservation was confirmed); True if one was held."""
        return _int(await self._run("release", session_id, [member_of(user_id)])) == 1

    async def tick(self, *, session_id: int, policy: QueuePolicy) -> TickResult:
        """One atomic admission step for a session (safe to race from many instances)."""
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
            ],
        )
        n = [_int(v) for v in raw]  # type: ignore[attr-defined]
        return TickResult(
            admitted=n[0],
            expired_admissions=n[1],
            expired_waiters=n[2],
            active=n[3],
            waiting=n[4],
            version=n[5],
            next_ms=n[6],
            sold_out=n[7] == 1,
        )

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
            )
        if view.state == "none":
            raise ValueError("a user without a place has no status")
        return QueueStatus(
            session_id=session_id,
            status=view.state,
            position=None,
            ahead=0,
            estimated_wait_s=None,
            admission_token=None,
            admission_expires_at=None,
        )
