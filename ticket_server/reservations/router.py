"""Reservation routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from shared.schemas.common import Items, problem_responses
from shared.schemas.ticketing import ReservationCreate, ReservationRead
from ticket_server.dependencies import (
    AdmissionHeader,
    CurrentUser,
    TicketingDep,
    verify_admission,
)
from ticket_server.errors import NotFound
from ticket_server.ids import hold_session
from ticket_server.reservations import service

router = APIRouter(prefix="/api/ticketing", tags=["ticketing"])

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        pattern=r"^[\x21-\x7e]+$",
        description="1-64 visible ASCII characters; a retry with the same key and body "
        "returns the first result.",
    ),
]


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    response_model=ReservationRead,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def create_reservation(
    body: ReservationCreate,
    user: CurrentUser,
    idempotency_key: IdempotencyKey,
    ctx: TicketingDep,
    admission_token: AdmissionHeader = None,
) -> ReservationRead:
    """Confirm one's hold into a reservation (needs the session's admission token)."""
    session_id = hold_session(body.hold_id)
    if session_id is None:
        raise NotFound("No such hold.")
    settings = ctx.settings
    admission = verify_admission(
        admission_token, tokens=ctx.tokens, user=user, session_id=session_id
    )
    return await service.confirm(
        redis=ctx.redis,
        scripts=ctx.scripts,
        metrics=ctx.metrics,
        replica_wait=ctx.replica_wait,
        user=user,
        session_id=session_id,
        hold_id=body.hold_id,
        idempotency_key=idempotency_key,
        queue_position=admission.queue_position,
        idempotency_ttl_s=settings.idempotency_ttl_s,
    )


@router.get(
    "/reservations/{reservation_id}",
    response_model=ReservationRead,
    responses=problem_responses(401, 404, 503),
)
async def get_reservation(
    reservation_id: str, user: CurrentUser, ctx: TicketingDep
) -> ReservationRead:
    """One's own reservation (others' are 404)."""
    return await service.get_reservation(
        redis=ctx.redis, reservation_id=reservation_id, user_id=user.user_id
    )


@router.get(
    "/me/reservations",
    response_model=Items[ReservationRead],
    responses=problem_responses(401, 503),
)
async def list_my_reservations(user: CurrentUser, ctx: TicketingDep) -> Items[ReservationRead]:
    """Every reservation of the caller, confirmed or cancelled, newest first."""
    return Items[ReservationRead](
        items=await service.list_reservations(redis=ctx.redis, user_id=user.user_id)
    )


@router.delete(
    "/reservations/{reservation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 404, 503),
)
async def cancel_reservation(reservation_id: str, user: CurrentUser, ctx: TicketingDep) -> Response:
    """Cancel one's own reservation: seats available again, ranking entry removed."""
    await service.cancel(
        redis=ctx.redis,
        scripts=ctx.scripts,
        metrics=ctx.metrics,
        reservation_id=reservation_id,
        user_id=user.user_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
