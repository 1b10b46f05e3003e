"""Request dependencies: clients from the lifespan state, the caller's identity and the
caller's admission to a session, each verified here with the shared verifier."""

from __future__ import annotations

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
from ticket_server.scripts import Scripts


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return cast(Settings, request.state.settings)


def get_redis(request: Request) -> Redis:
    """The app's Redis client."""
    return cast(Redis, request.state.redis)


def get_scripts(request: Request) -> Scripts:
    """The registered Lua scripts."""
    return cast(Scripts, request.state.scripts)


def get_inventory(request: Request) -> Inventory:
    """The seat-map loader and cache."""
    return cast(Inventory, request.state.inventory)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
ScriptsDep = Annotated[Scripts, Depends(get_scripts)]
InventoryDep = Annotated[Inventory, Depends(get_inventory)]

SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Session id.")]

# auto_error=False: a missing header is our 401 problem (with WWW-Authenticate), not
# FastAPI's bare 403.
_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/auth/guest.")


def current_user(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    """The caller, from ``Authorization: Bearer`` (never from ``X-User-Id``)."""
    if credentials is None:
        raise Unauthorized("An access token is required (Authorization: Bearer <token>).")
    try:
        return verify_access_token(credentials.credentials, secret=settings.secret_key)
    except InvalidToken as e:
        raise Unauthorized("The access token is invalid or expired.") from e


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
        return verify_admission_token(
            token, secret=settings.secret_key, user_id=user.user_id, session_id=session_id
        )
    except InvalidToken as e:
        raise Forbidden("The admission token is invalid, expired, or not for this session.") from e


def session_admission(
    session_id: SessionId, user: CurrentUser, settings: SettingsDep, token: AdmissionHeader = None
) -> AdmissionClaims:
    """Admission to the session named in the path."""
    return verify_admission(token, settings=settings, user=user, session_id=session_id)


SessionAdmission = Annotated[AdmissionClaims, Depends(session_admission)]
