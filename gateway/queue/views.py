"""Plain functions of the waiting room's views: a user's member name, the admission burst,
the wait estimate, and a script's reply read as a ``QueueView``."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence

from gateway.queue.schemas import QueuePolicy, QueueView

# The admission loop's period; the rate limiter's burst is one period's worth of admissions.
TICK_S = 0.05


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


def to_int(value: object) -> int:
    if isinstance(value, bytes):
        value = value.decode()
    return int(value)  # type: ignore[call-overload,no-any-return]


_STATES = frozenset(("pre_queue", "waiting", "admitted", "expired", "sold_out", "none", "early"))


def view_of(raw: Sequence[object]) -> QueueView:
    state = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    if state not in _STATES:
        raise QueueUnavailable(f"unexpected queue state {state!r}")
    n = [to_int(v) for v in raw[1:]]
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


def to_str(value: object) -> str:
    """A reply's bytes (or anything) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
