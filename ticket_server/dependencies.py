"""Request dependencies: clients from the lifespan state, the caller's identity and the
caller's admission to a session, each verified here with the shared verifier.

They are ``async def`` although they never await: FastAPI runs plain ``def`` dependencies
in the thread pool, which cost more than the whole Redis call of a hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from shared.ids import MAX_ID
from shared.tokens import AccessClaims, AdmissionClaims, InvalidToken
from shared.verified_tokens import VerifiedTokens
from ticket_server.config import Settings
from ticket_server.errors import Forbidden, Unauthorized
from ticket_server.inventory.service import Inventory
from ticket_server.metrics import BookingMetrics
from ticket_server.reservations.replication import ReplicaWait
from ticket_server.scripts import Scripts


@dataclass(frozen=True, slots=True)
class Ticketing:
    """What the lifespan built for the routes: one object, so a route resolves one
    dependency instead of four (FastAPI's per-dependency overhead shows on the hot path)."""

    settings: Settings
    redis: Redis
    scripts: Scripts
    inventory: Inventory
    metrics: BookingMetrics
    # Claims of the tokens verified here (a client sends the same ones on every request).
    tokens: VerifiedTokens
    replica_wait: ReplicaWait


async def get_ticketing(request: Request) -> Ticketing:
    """The app's clients and settings, from the lifespan state."""
    return cast(Ticketing, request.state.ticketing)


TicketingDep = Annotated[Ticketing, Depends(get_ticketing)]

SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Session id.")]

# auto_error=False: a missing header is our 401 problem (with WWW-Authenticate), not
# FastAPI's bare 403.
_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/auth/guest.")


def authenticate(token: str | None, *, tokens: VerifiedTokens) -> AccessClaims:
    """The caller of a bearer ``token`` (None: no usable ``Authorization``), else 401."""
    if not token:
        raise Unauthorized("An access token is required (Authorization: Bearer <token>).")
    try:
        return tokens.verify(token)
    except InvalidToken as e:
        raise Unauthorized("The access token is invalid or expired.") from e


async def current_user(
    ctx: TicketingDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    """The caller, from ``Authorization: Bearer`` (never from ``X-User-Id``)."""
    return authenticate(credentials.credentials if credentials else None, tokens=ctx.tokens)


CurrentUser = Annotated[AccessClaims, Depends(current_user)]

AdmissionHeader = Annotated[
    str | None,
    Header(
        alias="X-Admission-Token",
        description="Admission token of this session, from the queue.",
    ),
]


def verify_admission(
    token: str | None, *, tokens: VerifiedTokens, user: AccessClaims, session_id: int
) -> AdmissionClaims:
    """The caller's admission to ``session_id``, else 403."""
    if not token:
        raise Forbidden("An admission token for this session is required (X-Admission-Token).")
    try:
        return tokens.verify_admission(token, user_id=user.user_id, session_id=session_id)
    except InvalidToken as e:
        raise Forbidden("The admission token is invalid, expired, or not for this session.") from e


async def session_admission(
    session_id: SessionId, user: CurrentUser, ctx: TicketingDep, token: AdmissionHeader = None
) -> AdmissionClaims:
    """Admission to the session named in the path."""
    return verify_admission(token, tokens=ctx.tokens, user=user, session_id=session_id)


SessionAdmission = Annotated[AdmissionClaims, Depends(session_admission)]
