"""Queue routes (API.md "Queue admission"): join, status, leave, the pre-queue's draw, and
an SSE stream. Thin: the logic is ``QueueService``'s (service.py).

Every route but the draw needs identity (the front layer verified the access token). Redis
trouble is a 503 problem: the queue fails closed, it never admits (or claims to) on a guess.

A join (and a status) answers with the caller's queue ticket in ``X-Queue-Ticket``; sent
back on a status poll or stream, it tells any gateway where the caller stands in line
without asking Redis (a gateway also remembers the line numbers it has seen)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import State
from starlette.types import Message, Send

from gateway.dependencies import CurrentUser
from gateway.fastpath import FastRoute
from gateway.queue.runtime import QueueRuntime
from gateway.queue.schemas import QueueStatus
from gateway.queue.service import QueueService, QueueUnavailable
from shared.ids import MAX_ID
from shared.schemas.common import problem_responses
from shared.schemas.queue import QueueDraw
from shared.tokens import AccessClaims
from svckit.errors import NotFound, ServiceUnavailable

router = APIRouter()

SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The session's id.")]
Ticket = Annotated[
    str | None,
    Header(alias="X-Queue-Ticket", max_length=128, description="The caller's queue ticket."),
]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)]
SSE_PING_S = 15
# A stream is told that its place moved at most this often; other changes go out at once.
POSITION_EVERY_S = 1.0
UNAVAILABLE = '{"detail": "the waiting room is unavailable"}'
TICKET_HEADER = "X-Queue-Ticket"


class StatusEventStream(EventSourceResponse):
    """sse_starlette's response, minus the anyio cancel scope it opens around every send
    even when there is no send timeout (ours has none): one change is an event on every
    open stream of the session at once. With a timeout the library's own path runs."""

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True  # as the library marks a send that never returned
            raise


async def get_queue(request: Request) -> QueueRuntime:
    """The app's waiting room (built in the lifespan)."""
    runtime: QueueRuntime = request.app.state.queue
    return runtime


QueueDep = Annotated[QueueRuntime, Depends(get_queue)]


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("the waiting room is unavailable, try again", retry_after=1)


async def join(service: QueueService, session_id: int, user_id: str) -> QueueStatus:
    """Join (or re-join, keeping the place) and return the caller's status."""
    try:
        return await service.join_user(session_id=session_id, user_id=user_id)
    except QueueUnavailable as e:
        raise _unavailable() from e


async def status_of(
    service: QueueService, session_id: int, user_id: str, ticket: str | None = None
) -> QueueStatus:
    """The caller's status (a heartbeat); 404 for a user without a place."""
    try:
        status = await service.status_of(session_id=session_id, user_id=user_id, ticket=ticket)
    except QueueUnavailable as e:
        raise _unavailable() from e
    if status is None:
        raise NotFound("you are not in this session's queue")
    return status


def _with_ticket(service: QueueService, response: Response, session_id: int, user_id: str) -> None:
    ticket = service.ticket_for(session_id, user_id)
    if ticket is not None:
        response.headers[TICKET_HEADER] = ticket


@router.post(
    "/{session_id}/join",
    response_model=QueueStatus,
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def join_queue(
    session_id: SessionId, user: CurrentUser, queue: QueueDep, response: Response
) -> QueueStatus:
    """Join the session's waiting room (its pre-queue before booking opens); joining again
    keeps the place. The queue ticket comes back in ``X-Queue-Ticket``."""
    status = await join(queue.service, session_id, user.user_id)
    _with_ticket(queue.service, response, session_id, user.user_id)
    return status


@router.get("/{session_id}/draw", response_model=QueueDraw, responses=problem_responses(404, 422))
async def queue_draw(session_id: SessionId, queue: QueueDep) -> QueueDraw:
    """The pre-queue's draw (no auth): the seed's SHA-256 from the pre-queue's opening, the
    seed itself once booking opens, and how many entrants the draw ordered."""
    try:
        return await queue.service.draw_of(session_id=session_id)
    except QueueUnavailable as e:
        raise _unavailable() from e


@router.get(
    "/{session_id}",
    response_model=QueueStatus,
    responses=problem_responses(401, 404, 422, 503),
)
async def queue_status(
    session_id: SessionId,
    user: CurrentUser,
    queue: QueueDep,
    response: Response,
    ticket: Ticket = None,
) -> QueueStatus:
    """Where the caller stands; polling it is the waiter's heartbeat."""
    status = await status_of(queue.service, session_id, user.user_id, ticket)
    if ticket is None or queue.service.ticket_line(session_id, user.user_id, ticket) is None:
        # A new ticket where the old one no longer holds (the line was lost and joined again).
        _with_ticket(queue.service, response, session_id, user.user_id)
    return status


def fast_routes(prefix: str) -> list[FastRoute]:
    """Join and status for the front layer's fast path (``gateway/front/local.py``): every waiter
    repeats them at on-sale time, and FastAPI's routing and dependency resolution cost more
    CPU than the call itself (a third of the gateway's, profiled). The routes above stay:
    they document the API, and answer whatever the fast path declines (ids out of range).
    The fast path sees no request headers: it finds the caller's line number in what this
    gateway remembers (its joins and earlier polls), else asks Redis once."""

    async def fast_join(state: State, session_id: int, user: AccessClaims) -> bytes | None:
        if not _valid_session_id(session_id):
            return None
        return (
            (await join(state.queue.service, session_id, user.user_id)).model_dump_json().encode()
        )

    async def fast_status(state: State, session_id: int, user: AccessClaims) -> bytes | None:
        if not _valid_session_id(session_id):
            return None
        status = await status_of(state.queue.service, session_id, user.user_id)
        return status.model_dump_json().encode()

    return [
        FastRoute("POST", prefix + "/{session_id}/join", fast_join),
        FastRoute("GET", prefix + "/{session_id}", fast_status),
    ]


def _valid_session_id(session_id: int) -> bool:
    return 1 <= session_id <= MAX_ID  # as ``SessionId`` validates it


@router.delete("/{session_id}", status_code=204, responses=problem_responses(401, 422, 503))
async def leave_queue(session_id: SessionId, user: CurrentUser, queue: QueueDep) -> Response:
    """Leave the queue (an admitted user gives the slot back). Idempotent."""
    try:
        await queue.service.leave(session_id=session_id, user_id=user.user_id)
    except QueueUnavailable as e:
        raise _unavailable() from e
    return Response(status_code=204)


@router.get(
    "/{session_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "QueueStatus events"},
        **problem_responses(401, 404, 422, 503),
    },
)
async def queue_events(
    session_id: SessionId,
    user: CurrentUser,
    queue: QueueDep,
    ticket: Ticket = None,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """Server-Sent Events: a ``status`` event (a QueueStatus) on every change (a move up the
    line at most once a second, anything else at once), its id the session's change counter
    (a client reconnecting with ``Last-Event-ID`` is not sent the status it already has);
    pings keep proxies from closing the stream; an open stream is the waiter's heartbeat.
    Every stream of a session on this gateway reads the one snapshot of it in memory: a
    change costs one Redis read per gateway, not one per stream."""
    service = queue.service
    first = await status_of(service, session_id, user.user_id, ticket)
    # Re-read often enough to keep the heartbeat fresh even when nothing changes.
    refresh_s = max(0.5, min(queue.heartbeat_timeout_s / 3, 5.0))

    def version() -> str:
        snap = service.cached_snapshot(session_id)
        return str(snap.version if snap else 0)

    async def events() -> AsyncIterator[ServerSentEvent]:
        loop = asyncio.get_running_loop()
        status: QueueStatus | None = first
        last: tuple[object, ...] | None = None
        sent_at = float("-inf")
        resume = last_event_id
        while True:
            if status is None:
                yield ServerSentEvent("{}", event="gone")
                return
            # The token is re-signed on every read; a change is a change of anything else.
            key = (
                status.status,
                status.position,
                status.ahead,
                status.estimated_wait_s,
                status.admission_expires_at,
                status.draw_rank,
            )
            event_id = version()
            if resume is not None and resume == event_id:
                last = key  # the client has this one already
            resume = None
            wait_s = refresh_s
            if key != last:
                # A place that only moved up waits for its turn (one a second): in a busy
                # on-sale the line moves on every tick, and sending each move to every
                # stream was most of the gateway's work. Anything else goes out at once.
                held_s = POSITION_EVERY_S - (loop.time() - sent_at)
                if last is not None and key[0] == last[0] and key[4:] == last[4:] and held_s > 0:
                    # The re-read is the waiter's heartbeat too: never later than refresh_s.
                    wait_s = min(held_s, refresh_s)
                else:
                    last, sent_at = key, loop.time()
                    yield ServerSentEvent(status.model_dump_json(), id=event_id, event="status")
            # Re-read on a change (the notifier releases a session's streams together), when
            # a held place is due, or after refresh_s: the heartbeat.
            await queue.notifier.wait(session_id, wait_s)
            try:
                status = await service.status_of(session_id=session_id, user_id=user.user_id)
            except QueueUnavailable:
                yield ServerSentEvent(UNAVAILABLE, event="error")
                return

    return StatusEventStream(events(), ping=SSE_PING_S)
