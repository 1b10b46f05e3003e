"""Request dependencies: clients from the lifespan state, the caller's identity and the
caller's admission to a session, each verified here with the shared verifier.

They are ``async def`` although they never await: FastAPI runs plain ``def`` dependencies
in the thread pool, which cost more than the whole Redis call of a hold."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from shared.tokens import (
    AccessClaims,
    AdmissionClaims,
    InvalidToken,
    verify_access_token,
    verify_admission_token,
)
from ticket_server.config import Settings
from ticket_server.errors import Forbidden, Unauthorized
from ticket_server.ids import MAX_ID
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
    replica_wait: ReplicaWait


async def get_ticketing(request: Request) -> Ticketing:
    """The app's clients and settings, from the lifespan state."""
    return cast(Ticketing, request.state.ticketing)


TicketingDep = Annotated[Ticketing, Depends(get_ticketing)]

SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Session id.")]

# auto_error=False: a missing header is our 401 problem (with WWW-Authenticate), not
# FastAPI's bare 403.
_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/auth/guest.")


# Verifying a JWT costs about as much as a hold's whole Redis call, and a client sends the
# same tokens on every request: successful verdicts are cached (failures never are) and a
# cached one is honoured only until the token's own expiry (with the verifier's leeway).
_TOKEN_CACHE_SIZE = 16_384
_LEEWAY_S = 2


@functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _access_claims(token: str, secret: str) -> AccessClaims:
    return verify_access_token(token, secret=secret)


@functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _admission_claims(token: str, secret: str, user_id: str, session_id: int) -> AdmissionClaims:
    return verify_admission_token(token, secret=secret, user_id=user_id, session_id=session_id)


def _unexpired(expires_at: int) -> None:
    if time.time() > expires_at + _LEEWAY_S:
        raise InvalidToken("expired")


def authenticate(token: str | None, *, settings: Settings) -> AccessClaims:
    """The caller of a bearer ``token`` (None: no usable ``Authorization``), else 401."""
    if not token:
        raise Unauthorized("An access token is required (Authorization: Bearer <token>).")
    try:
        claims = _access_claims(token, settings.secret_key)
        _unexpired(claims.expires_at)
    except InvalidToken as e:
        raise Unauthorized("The access token is invalid or expired.") from e
    return claims


async def current_user(
    ctx: TicketingDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    """The caller, from ``Authorization: Bearer`` (never from ``X-User-Id``)."""
    return authenticate(credentials.credentials if credentials else None, settings=ctx.settings)


CurrentUser = Annotated[AccessClaims, Depends(current_user)]

AdmissionHeader = Annotated[
    str | None,
    Header(
        alias="X-Admission-Token",
        description="Admission token of this session, from the queue.",
    ),
]


def verify_admission(
    token: str | None, *, settings: Settings, user: AccessClaims, session_id: int
) -> AdmissionClaims:
    """The caller's admission to ``session_id``, else 403."""
    if not token:
        raise Forbidden("An admission token for this session is required (X-Admission-Token).")
    try:
        claims = _admission_claims(token, settings.secret_key, user.user_id, session_id)
        _unexpired(claims.expires_at)
    except InvalidToken as e:
        raise Forbidden("The admission token is invalid, expired, or not for this session.") from e
    return claims


async def session_admission(
    session_id: SessionId, user: CurrentUser, ctx: TicketingDep, token: AdmissionHeader = None
) -> AdmissionClaims:
    """Admission to the session named in the path."""
    return verify_admission(token, settings=ctx.settings, user=user, session_id=session_id)


SessionAdmission = Annotated[AdmissionClaims, Depends(session_admission)]
