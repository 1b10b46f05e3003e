"""Hold routes."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from shared.schemas.common import problem_responses
from shared.schemas.ticketing import HoldCreate, HoldRead
from ticket_server.dependencies import CurrentUser, SessionAdmission, SessionId, TicketingDep
from ticket_server.holds import service

router = APIRouter(prefix="/api/ticketing", tags=["ticketing"])


@router.post(
    "/sessions/{session_id}/holds",
    status_code=status.HTTP_201_CREATED,
    response_model=HoldRead,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def create_hold(
    session_id: SessionId,
    body: HoldCreate,
    user: CurrentUser,
    admission: SessionAdmission,
    ctx: TicketingDep,
) -> HoldRead:
    """Hold seats, all or nothing (409 with conflicting_seat_ids; unknown seats are 422)."""
    settings = ctx.settings
    return await service.hold_seats(
        scripts=ctx.scripts,
        inventory=ctx.inventory,
        metrics=ctx.metrics,
        session_id=session_id,
        user_id=user.user_id,
        seat_ids=body.seat_ids,
        limit=settings.max_seats_per_user,
        ttl_s=settings.hold_ttl_s,
        grace_s=settings.hold_grace_s,
    )


@router.delete(
    "/holds/{hold_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 404, 503),
)
async def delete_hold(
    hold_id: str,
    user: CurrentUser,
    ctx: TicketingDep,
) -> Response:
    """Release one's own hold; its seats become available (others' holds are 404)."""
    await service.release_hold(scripts=ctx.scripts, hold_id=hold_id, user_id=user.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
