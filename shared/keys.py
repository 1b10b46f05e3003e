"""Every Redis key is built here. Keys carry a hash tag (``{...}``) so that each Lua script
touches keys of one slot only and runs unchanged on Redis Cluster. Secrets and tokens are
hashed before they become part of a key."""

from __future__ import annotations

import hashlib

PREFIX = "bx"

# A set of the session ids whose event stream exists; lets consumers find the streams.
EVENT_STREAMS = f"{PREFIX}:event-streams"
# Consumer groups on the per-session event streams.
WORKER_GROUP = "worker"
GATEWAY_QUEUE_GROUP = "gateway-queue"
DEAD_LETTER_STREAM = f"{PREFIX}:{{dlq}}:events"


def digest(value: str) -> str:
    """A short, stable, non-reversible stand-in for a secret inside a key."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def session_tag(session_id: int) -> str:
    """The hash tag shared by every key of one session."""
    return f"{{s:{session_id}}}"


def session_key(session_id: int, name: str) -> str:
    """A key of one session, e.g. ``bx:{s:42}:seats``."""
    return f"{PREFIX}:{session_tag(session_id)}:{name}"


def events_stream(session_id: int) -> str:
    """The session's stream of reservation events (the outbox, written by ticket_server)."""
    return session_key(session_id, "events")


def stream_session(stream: str) -> int:
    """The session id of an :func:`events_stream` key."""
    prefix = f"{PREFIX}:{{s:"
    if not stream.startswith(prefix) or not stream.endswith("}:events"):
        raise ValueError(f"not an event stream: {stream!r}")
    return int(stream[len(prefix) : -len("}:events")])


# --- ticket_server -----------------------------------------------------------------------


def seats(session_id: int) -> str:
    """Hash ``seat_id -> state`` of the live seat map."""
    return session_key(session_id, "seats")


def seat_meta(session_id: int) -> str:
    """Hash ``seat_id -> json(label, grade, price)``; static once loaded."""
    return session_key(session_id, "seatmeta")


def session_info(session_id: int) -> str:
    """Hash of the session's facts ticket_server needs (booking_opens_at_ms, seat_count)."""
    return session_key(session_id, "info")


def inventory_lock(session_id: int) -> str:
    """Lock taken while the seat map is loaded from the database."""
    return session_key(session_id, "load-lock")


def sold_out_flag(session_id: int) -> str:
    """Set (by ticket_server) once every seat of the session is sold."""
    return session_key(session_id, "sold-out")


# --- gateway: queue admission --------------------------------------------------------------


def queue_key(session_id: int, name: str) -> str:
    """A key of the session's waiting room, e.g. ``bx:{s:42}:q:waiting``."""
    return session_key(session_id, f"q:{name}")


# Members of a session's queue are spread over this many small hashes (member -> line
# number): each stays a compact listpack up to ~3 million waiters per session (Redis's
# hash-max-listpack-entries is 128), where one big hash costs three times the memory.
QUEUE_MEMBER_BUCKETS = 1 << 15


def queue_members(session_id: int, bucket: int) -> str:
    """One of the session's member buckets (``0 <= bucket < QUEUE_MEMBER_BUCKETS``)."""
    return queue_key(session_id, f"m:{bucket}")


def queue_draw_lock(session_id: int) -> str:
    """Held by the gateway placing the session's pre-queue in draw order."""
    return queue_key(session_id, "draw-lock")


# --- gateway: rate limiting -----------------------------------------------------------------


def rate_limit(policy: str, subject: str) -> str:
    """The limiter state of one subject (user id or client address) under one policy."""
    return f"{PREFIX}:{{rl:{policy}:{digest(subject)}}}"


def gateway_instances() -> str:
    """Sorted set of live gateway instances (member id, score last heartbeat)."""
    return f"{PREFIX}:gateways"


# --- ticket_server: holds, reservations, ranking (all under the session's hash tag) ---------


def hold(session_id: int, hold_id: str) -> str:
    """Hash of one hold (user, seat ids, expiry ms); kept a little past expiry for a 409."""
    return session_key(session_id, f"hold:{hold_id}")


def reservation(session_id: int, reservation_id: str) -> str:
    """Hash of one reservation (the fields of the public ``Reservation`` plus nickname)."""
    return session_key(session_id, f"res:{reservation_id}")


def user_holds(session_id: int, user_id: str) -> str:
    """Sorted set ``<hold_id>:<seat count> -> expiry ms`` of a user's holds in the session."""
    return session_key(session_id, f"u:{digest(user_id)}:holds")


def user_reservations(session_id: int, user_id: str) -> str:
    """Sorted set ``reservation_id -> created ms`` of a user's reservations in the session."""
    return session_key(session_id, f"u:{digest(user_id)}:res")


def user_sold(session_id: int, user_id: str) -> str:
    """Counter of the seats in a user's live (confirmed) reservations in the session."""
    return session_key(session_id, f"u:{digest(user_id)}:sold")


def rank_seq(session_id: int) -> str:
    """Counter handing out ranks 1, 2, 3, ... in order of confirmation (never reused)."""
    return session_key(session_id, "rank-seq")


def ranking(session_id: int) -> str:
    """Sorted set ``reservation_id -> rank`` of the session's live confirmed reservations."""
    return session_key(session_id, "ranking")


def idempotency(session_id: int, user_id: str, key: str) -> str:
    """A confirm's stored result (``<body fingerprint>|<reservation_id>``) per user and key."""
    return session_key(session_id, "idem:" + digest(f"{user_id}|{key}"))


def idempotency_claim(user_id: str, key: str) -> str:
    """Which body (fingerprint) a user's ``Idempotency-Key`` was first used with, across
    sessions (the per-session record above cannot see another session's use of the key)."""
    return f"{PREFIX}:{{idem:{digest(f'{user_id}|{key}')}}}"


def user_sessions(user_id: str) -> str:
    """Set of the session ids a user has held seats in: the index of ``/me/reservations``."""
    return f"{PREFIX}:{{u:{digest(user_id)}}}:sessions"


# --- gateway: queue admission (registry) ----------------------------------------------------


def queue_sessions() -> str:
    """Sorted set of session ids with a waiting room (score: last join, epoch ms); every
    gateway's admission loop ticks these. Queue keys themselves: ``queue_key``."""
    return f"{PREFIX}:queue-sessions"


def replication_fence(session_id: int) -> str:
    """A write in the session's slot that a confirm's ``WAIT`` waits on (its replication
    offset follows the confirm's)."""
    return session_key(session_id, "repl-fence")
