"""Holding and releasing seats (the logic lives in ``hold.lua`` / ``release.lua``)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared import keys
from shared.ids import MAX_ID
from shared.schemas.ticketing import HoldRead
from ticket_server.errors import Conflict, NotFound, Unprocessable
from ticket_server.ids import hold_session, new_hold_id
from ticket_server.inventory.service import Inventory
from ticket_server.metrics import BookingMetrics
from ticket_server.scripts import Scripts


def check_seat_ids(seat_ids: list[int], *, limit: int) -> None:
    """Refuse (422) what no script needs to see: duplicates, out-of-range ids, too many."""
    if len(set(seat_ids)) != len(seat_ids):
        dupes = sorted({s for s in seat_ids if seat_ids.count(s) > 1})
        raise Unprocessable("seat_ids contains duplicates.", duplicate_seat_ids=dupes)
    if any(not 1 <= s <= MAX_ID for s in seat_ids):
        # Not echoed: an out-of-range int cannot even be rendered as a JSON number here.
        raise Unprocessable(f"seat_ids must be integers from 1 to {MAX_ID}.")
    if len(seat_ids) > limit:
        raise Unprocessable(
            f"At most {limit} seats per user in a session.", limit=limit, requested=len(seat_ids)
        )


_HOLD_OUTCOMES = {"ok": "ok", "conflict": "conflict", "limit": "limit", "unknown": "unknown_seats"}


async def hold_seats(
    *,
    scripts: Scripts,
    inventory: Inventory,
    metrics: BookingMetrics,
    session_id: int,
    user_id: str,
    seat_ids: list[int],
    limit: int,
    ttl_s: int,
    grace_s: int,
) -> HoldRead:
    """Hold every seat in ``seat_ids`` for the user, or none of them.

    422 for duplicates, unknown seats or the per-user limit; 409 with
    ``conflicting_seat_ids`` when any seat is held or sold; 404 for an unknown session.
    """
    check_seat_ids(seat_ids, limit=limit)
    hold_id = new_hold_id(session_id)
    keys_ = [
        keys.seats(session_id),
        keys.session_info(session_id),
        keys.user_holds(session_id, user_id),
        keys.user_sold(session_id, user_id),
        keys.hold(session_id, hold_id),
    ]
    args: list[str | int] = [hold_id, user_id, ttl_s * 1000, limit, grace_s * 1000, session_id]
    args += seat_ids
    for attempt in range(2):
        result = await scripts.hold(keys=keys_, args=args)
        if result[0] != "not_loaded":
            break
        if attempt == 0:
            await inventory.ensure_loaded(session_id)  # 404 when the session is unknown
    status = result[0]
    metrics.holds.labels(_HOLD_OUTCOMES.get(status, "not_found")).inc()
    if status == "ok":
        return HoldRead(
            hold_id=hold_id,
            session_id=session_id,
            seat_ids=seat_ids,
            expires_at=datetime.fromtimestamp(int(result[1]) / 1000, tz=UTC),
        )
    if status == "conflict":
        raise Conflict(
            "Some seats are not available; nothing was held.",
            conflicting_seat_ids=[int(s) for s in result[1]],
        )
    if status == "unknown":
        raise Unprocessable(
            "Some seats do not exist in this session.",
            unknown_seat_ids=[int(s) for s in result[1]],
        )
    if status == "limit":
        raise Unprocessable(
            f"At most {limit} seats per user in a session (holds and reservations).",
            limit=limit,
            in_use=int(result[1]),
            requested=len(seat_ids),
        )
    raise NotFound(f"Session {session_id} does not exist.")


async def release_hold(*, scripts: Scripts, hold_id: str, user_id: str) -> None:
    """Release the user's hold (404 when it is not the user's or does not exist)."""
    session_id = hold_session(hold_id)
    if session_id is None:
        raise NotFound("No such hold.")
    result = await scripts.release(
        keys=[
            keys.seats(session_id),
            keys.hold(session_id, hold_id),
            keys.user_holds(session_id, user_id),
        ],
        args=[hold_id, user_id],
    )
    if result != "ok":
        raise NotFound("No such hold.")
