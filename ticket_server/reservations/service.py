"""Confirming, reading, listing and cancelling reservations (logic in ``confirm.lua`` and
``cancel.lua``)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis

from shared import keys
from shared.schemas.ticketing import ReservationRead
from shared.tokens import AccessClaims
from ticket_server.errors import Conflict, NotFound, Unprocessable
from ticket_server.ids import reservation_id_for_hold, reservation_session
from ticket_server.metrics import BookingMetrics
from ticket_server.reservations.replication import ReplicationTimeout, ReplicaWait
from ticket_server.scripts import Scripts


def _dt(ms: int | str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def reservation_from_hash(data: dict[str, str]) -> ReservationRead:
    """The public reservation from its Redis hash (written by ``confirm.lua``)."""
    qpos = data.get("queue_position", "")
    return ReservationRead(
        reservation_id=data["reservation_id"],
        session_id=int(data["session_id"]),
        user_id=data["user_id"],
        seat_ids=[int(s) for s in data["seat_ids"].split(",") if s],
        status="cancelled" if data.get("status") == "cancelled" else "confirmed",
        rank=int(data["rank"]),
        completion_ms=int(data["completion_ms"]),
        queue_position=int(qpos) if qpos else None,
        created_at=_dt(data["created_ms"]),
    )


def body_fingerprint(hold_id: str) -> str:
    """A stand-in for the request body, to tell a replay from a reuse of the key."""
    return keys.digest(orjson.dumps({"hold_id": hold_id}, option=orjson.OPT_SORT_KEYS).decode())


_CONFIRM_OUTCOMES = {
    "ok": "ok",
    "replay": "replay",
    "idem_mismatch": "key_reused",
    "hold_expired": "expired",
    "hold_lost": "lost",
}


async def confirm(
    *,
    redis: Redis,
    scripts: Scripts,
    metrics: BookingMetrics,
    replica_wait: ReplicaWait,
    user: AccessClaims,
    session_id: int,
    hold_id: str,
    idempotency_key: str,
    queue_position: int | None,
    idempotency_ttl_s: int,
) -> ReservationRead:
    """Turn the user's live hold into a reservation; a replay returns the first result.

    404 for a hold that is not the user's (or gone), 409 for an expired hold, 422 for an
    ``Idempotency-Key`` already used with another body, 503 ``replication-timeout`` when
    the master has replicas and none acknowledged the reservation in time
    (``replication.py``).
    """
    fingerprint = body_fingerprint(hold_id)
    ttl_ms = idempotency_ttl_s * 1000
    # The per-session record (inside the script) cannot see the key used in another
    # session; this claim can. It is set before the script and only ever names one body.
    claim = keys.idempotency_claim(user.user_id, idempotency_key)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(claim, fingerprint, nx=True, px=ttl_ms)
        pipe.get(claim)
        # Write-ahead index for /me/reservations: present before any reservation can be.
        pipe.sadd(keys.user_sessions(user.user_id), str(session_id))
        # The stream registered before its event: the worker drops finished sessions from
        # the registry, and must find this one again.
        pipe.sadd(keys.EVENT_STREAMS, str(session_id))
        _, claimed, _, _ = await pipe.execute()
    if claimed is not None and claimed != fingerprint:
        metrics.confirmations.labels("key_reused").inc()
        raise _key_reused()
    reservation_id = reservation_id_for_hold(hold_id)
    result = await scripts.confirm(
        keys=[
            keys.seats(session_id),
            keys.session_info(session_id),
            keys.hold(session_id, hold_id),
            keys.user_holds(session_id, user.user_id),
            keys.user_sold(session_id, user.user_id),
            keys.user_reservations(session_id, user.user_id),
            keys.reservation(session_id, reservation_id),
            keys.rank_seq(session_id),
            keys.ranking(session_id),
            keys.idempotency(session_id, user.user_id, idempotency_key),
            keys.events_stream(session_id),
            keys.sold_out_flag(session_id),
        ],
        args=[
            hold_id,
            user.user_id,
            user.nickname,
            reservation_id,
            fingerprint,
            ttl_ms,
            "" if queue_position is None else queue_position,
            session_id,
        ],
    )
    status = result[0]
    if status in ("ok", "replay"):
        try:
            await replica_wait.acknowledged(session_id)
        except ReplicationTimeout:
            metrics.confirmations.labels("replication_timeout").inc()
            raise
    metrics.confirmations.labels(_CONFIRM_OUTCOMES.get(status, "not_found")).inc()
    if status == "ok":
        _, rid, rank, completion_ms, created_ms, seat_csv = result
        return ReservationRead(
            reservation_id=rid,
            session_id=session_id,
            user_id=user.user_id,
            seat_ids=[int(s) for s in seat_csv.split(",") if s],
            status="confirmed",
            rank=int(rank),
            completion_ms=int(completion_ms),
            queue_position=queue_position,
            created_at=_dt(created_ms),
        )
    if status == "replay":
        return await get_reservation(redis=redis, reservation_id=result[1], user_id=user.user_id)
    if status == "idem_mismatch":
        raise _key_reused()
    if status == "hold_expired":
        raise Conflict("The hold has expired; hold the seats again.")
    if status == "hold_lost":
        raise Conflict("The hold no longer covers its seats; hold the seats again.")
    raise NotFound("No such hold.")


def _key_reused() -> Unprocessable:
    return Unprocessable(
        "This Idempotency-Key was already used with a different request body.",
        title="Idempotency-Key reused",
    )


async def get_reservation(*, redis: Redis, reservation_id: str, user_id: str) -> ReservationRead:
    """The user's reservation (404 when it is someone else's or does not exist)."""
    session_id = reservation_session(reservation_id)
    if session_id is None:
        raise NotFound("No such reservation.")
    data: dict[str, str] = await redis.hgetall(  # type: ignore[assignment]  # decoded replies
        keys.reservation(session_id, reservation_id)
    )
    if not data or data.get("user_id") != user_id:
        raise NotFound("No such reservation.")
    return reservation_from_hash(data)


async def list_reservations(*, redis: Redis, user_id: str) -> list[ReservationRead]:
    """Every reservation of the user, confirmed or cancelled, newest first."""
    session_ids = [int(s) for s in await redis.smembers(keys.user_sessions(user_id))]
    async with redis.pipeline(transaction=False) as pipe:
        for sid in session_ids:
            pipe.zrange(keys.user_reservations(sid, user_id), 0, -1)
        per_session: list[list[str]] = await pipe.execute()
    ids = [(sid, rid) for sid, rids in zip(session_ids, per_session, strict=True) for rid in rids]
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for sid, rid in ids:
            pipe.hgetall(keys.reservation(sid, rid))
        rows = await pipe.execute()
    out = [reservation_from_hash(r) for r in rows if r and r.get("user_id") == user_id]
    out.sort(key=lambda r: (r.created_at, r.reservation_id), reverse=True)
    return out


async def cancel(
    *, redis: Redis, scripts: Scripts, metrics: BookingMetrics, reservation_id: str, user_id: str
) -> None:
    """Cancel the user's reservation (idempotent; 404 when it is not the user's)."""
    session_id = reservation_session(reservation_id)
    if session_id is None:
        metrics.cancellations.labels("not_found").inc()
        raise NotFound("No such reservation.")
    # Registered before the event, as in confirm (a cancel may come long after the sale).
    await redis.sadd(keys.EVENT_STREAMS, str(session_id))
    result = await scripts.cancel(
        keys=[
            keys.seats(session_id),
            keys.session_info(session_id),
            keys.reservation(session_id, reservation_id),
            keys.ranking(session_id),
            keys.user_sold(session_id, user_id),
            keys.events_stream(session_id),
            keys.sold_out_flag(session_id),
        ],
        args=[reservation_id, user_id, session_id],
    )
    metrics.cancellations.labels(result[0]).inc()
    if result[0] == "not_found":
        raise NotFound("No such reservation.")
