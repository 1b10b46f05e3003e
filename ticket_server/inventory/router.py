"""The live seat map route."""

from __future__ import annotations

from fastapi import APIRouter, Response

from shared.schemas.common import problem_responses
from shared.schemas.ticketing import SeatMap
from ticket_server.dependencies import SessionAdmission, SessionId, TicketingDep

router = APIRouter(prefix="/api/ticketing", tags=["ticketing"])


@router.get(
    "/sessions/{session_id}/seats",
    response_class=Response,
    responses={
        200: {"model": SeatMap, "content": {"application/json": {}}},
        **problem_responses(401, 403, 404, 422, 503),
    },
)
async def get_seat_map(
    session_id: SessionId, admission: SessionAdmission, ctx: TicketingDep
) -> Response:
    """Live seat map of a session (needs the session's admission token)."""
    body = await ctx.inventory.seat_map_json(session_id)
    return Response(body, media_type="application/json")
