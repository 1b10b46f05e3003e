"""Queue routes (API.md "Queue admission"): join, status, leave, and an SSE stream.

Every route needs identity (the front layer verified the access token). Redis trouble is a
503 problem: the queue fails closed, it never admits (or claims to) on a guess."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from sse_starlette import EventSourceResponse
from starlette.datastructures import State

from gateway.dependencies import CurrentUser
from gateway.fastpath import FastRoute
from gateway.queue.facts import opens_in_s
from gateway.queue.runtime import QueueRuntime
from gateway.queue.schemas import QueuePolicy, QueueStatus, QueueView
from gateway.queue.service import QueueUnavailable
from shared.ids import MAX_ID
from shared.schemas.common import problem_responses
from shared.tokens import AccessClaims
from svckit.errors import AppError, Conflict, NotFound, ServiceUnavailable

router = APIRouter()

SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The session's id.")]
# SSE: re-read at least this often (it doubles as the heartbeat), never more often than this.
SSE_MIN_GAP_S = 0.2
SSE_PING_S = 15


async def get_queue(request: Request) -> QueueRuntime:
    """The app's waiting room (built in the lifespan)."""
    runtime: QueueRuntime = request.app.state.queue
    return runtime


QueueDep = Annotated[QueueRuntime, Depends(get_queue)]


def _unavailable(e: QueueUnavailable) -> ServiceUnavailable:
    return ServiceUnavailable("the waiting room is unavailable, try again", retry_after=1)


async def _policy(queue: QueueRuntime, session_id: int) -> QueuePolicy:
    # Only for the wait estimate: a stale or default policy is better than no status.
    try:
        return (await queue.facts.get(session_id)).policy
    except AppError:
        cached = queue.facts.cached(session_id)
        return cached.policy if cached else queue.facts.default_policy


async def _status(
    queue: QueueRuntime, session_id: int, user_id: str, *, beat: bool = True
) -> tuple[QueueView, QueueStatus | None]:
    try:
        view = await queue.service.status(session_id=session_id, user_id=user_id, beat=beat)
    except QueueUnavailable as e:
        raise _unavailable(e) from e
    if view.state == "none":
        return view, None
    policy = await _policy(queue, session_id)
    return view, queue.service.render(view, session_id=session_id, user_id=user_id, policy=policy)


async def join(queue: QueueRuntime, session_id: int, user_id: str) -> QueueStatus:
    """Join (or re-join, keeping the place) and return the caller's status."""
    facts = await queue.facts.get(session_id)  # unknown session → 404
    if opens_in_s(facts, datetime.now(UTC)) > 0:
        raise Conflict(
            "booking for this session has not opened yet",
            opens_at=facts.booking_opens_at.astimezone(UTC).isoformat(),
        )
    try:
        view = await queue.service.join(session_id=session_id, user_id=user_id)
        await queue.registry.register(session_id)
        queue.loop.wake(session_id)
    except QueueUnavailable as e:
        raise _unavailable(e) from e
    return queue.service.render(view, session_id=session_id, user_id=user_id, policy=facts.policy)


async def status_of(queue: QueueRuntime, session_id: int, user_id: str) -> QueueStatus:
    """The caller's status (a heartbeat); 404 for a user without a place."""
    _, status = await _status(queue, session_id, user_id)
    if status is None:
        raise NotFound("you are not in this session's queue")
    return status


@router.post(
    "/{session_id}/join",
    response_model=QueueStatus,
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def join_queue(session_id: SessionId, user: CurrentUser, queue: QueueDep) -> QueueStatus:
    """Join the session's waiting room; joining again keeps the place."""
    return await join(queue, session_id, user.user_id)


@router.get(
    "/{session_id}",
    response_model=QueueStatus,
    responses=problem_responses(401, 404, 422, 503),
)
async def queue_status(session_id: SessionId, user: CurrentUser, queue: QueueDep) -> QueueStatus:
    """Where the caller stands; polling it is the waiter's heartbeat."""
    return await status_of(queue, session_id, user.user_id)


def fast_routes(prefix: str) -> list[FastRoute]:
    """Join and status for the front layer's fast path (``gateway/front/local.py``): every waiter
    repeats them at on-sale time, and FastAPI's routing and dependency resolution cost more
    CPU than the call itself (a third of the gateway's, profiled). The routes above stay:
    they document the API, and answer whatever the fast path declines (ids out of range)."""

    async def fast_join(state: State, session_id: int, user: AccessClaims) -> bytes | None:
        if not _valid_session_id(session_id):
            return None
        return (await join(state.queue, session_id, user.user_id)).model_dump_json().encode()

    async def fast_status(state: State, session_id: int, user: AccessClaims) -> bytes | None:
        if not _valid_session_id(session_id):
            return None
        status = await status_of(state.queue, session_id, user.user_id)
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
        raise _unavailable(e) from e
    return Response(status_code=204)


@router.get(
    "/{session_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "QueueStatus events"},
        **problem_responses(401, 404, 422, 503),
    },
)
async def queue_events(
    session_id: SessionId, user: CurrentUser, queue: QueueDep
) -> EventSourceResponse:
    """Server-Sent Events: a ``status`` event (a QueueStatus) on every change; pings keep
    proxies from closing the stream; an open stream is the waiter's heartbeat."""
    _, first = await _status(queue, session_id, user.user_id)
    if first is None:
        raise NotFound("you are not in this session's queue")
    # Re-read often enough to keep the heartbeat fresh even when nothing changes.
    refresh_s = max(0.5, min(queue.heartbeat_timeout_s / 3, 5.0))

    async def events() -> AsyncIterator[dict[str, str]]:
        status: QueueStatus | None = first
        last: str | None = None
        while True:
            if status is None:
                yield {"event": "gone", "data": "{}"}
                return
            # The token is re-signed on every read; a change is a change of anything else.
            key = status.model_dump_json(exclude={"admission_token"})
            if key != last:
                last = key
                yield {"event": "status", "data": status.model_dump_json()}
            await queue.notifier.wait(session_id, refresh_s)
            await asyncio.sleep(SSE_MIN_GAP_S)  # coalesce a burst of changes into one read
            try:
                _, status = await _status(queue, session_id, user.user_id)
            except ServiceUnavailable:
                yield {"event": "error", "data": '{"detail": "the waiting room is unavailable"}'}
                return

    return EventSourceResponse(events(), ping=SSE_PING_S)
