"""Request-scoped dependencies: database sessions, settings, the admin check, id params."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker

from api_server.config import Settings
from api_server.errors import Forbidden, Unauthorized
from api_server.replica import ReadRouter
from shared.ids import MAX_ID

# An offset is no id, but the same reasoning bounds it (shared/ids.py): exact in JavaScript,
# and an absurd number is a 422 rather than a database overflow.
MAX_OFFSET = MAX_ID

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Integer id.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1..100.")]


# No I/O in these two: ``async def`` keeps them off the thread pool.
async def get_settings(request: Request) -> Settings:
    """The app's settings (from the lifespan state)."""
    settings: Settings = request.state.settings
    return settings


def _session(factory: sessionmaker[Session]) -> Iterator[Session]:
    # Services only flush; the request's outcome decides commit or rollback.
    with factory() as db:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


def get_db(request: Request) -> Iterator[Session]:
    """One session on the primary per request: commit on success, rollback on error."""
    yield from _session(request.state.session_factory)


def get_read_db(request: Request) -> Iterator[Session]:
    """One session on the read database per request: the replica when configured and
    usable, else the primary (``api_server/replica.py``)."""
    router: ReadRouter = request.state.read_router
    yield from _session(router.session_factory())


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": commit before the response is sent, so a failed commit is an error
# response rather than a 201 for a write that never happened.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_db, scope="function")]

_admin_header = APIKeyHeader(
    name="X-Admin-Token",
    auto_error=False,
    description="The configured admin secret (BOXOFFICE_ADMIN_TOKEN).",
)


def check_admin_token(expected: str, presented: bytes | None) -> None:
    """Missing ``X-Admin-Token`` → 401, wrong → 403 (constant-time comparison); an empty
    configured token refuses everyone."""
    if not presented:
        raise Unauthorized("The X-Admin-Token header is required.")
    wanted = expected.encode()
    # Compare bytes: compare_digest refuses non-ASCII str, and headers may carry any byte.
    if not wanted or not hmac.compare_digest(presented, wanted):
        raise Forbidden("The admin token is not valid.")


async def require_admin(
    settings: SettingsDep, token: Annotated[str | None, Depends(_admin_header)]
) -> None:
    """The admin check as a route dependency (it also documents the header in OpenAPI);
    ``AdminGuard`` has already made it before the body was read."""
    # Starlette decodes header bytes as latin-1: encoding back gives the bytes sent.
    check_admin_token(settings.admin_token, token.encode("latin-1") if token else None)


AdminDep = Depends(require_admin)
