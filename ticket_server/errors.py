"""ticket_server's errors: the svckit ones, plus how storage failures become responses.

Booking fails closed: when Redis (or, while loading a seat map, the database) does not
answer, the request gets a quick 503 with ``Retry-After``; it never hangs and never 500s.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from svckit.db_errors import is_data_error, refused_value_response
from svckit.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    app_error_response,
    request_id_of,
)

__all__ = [
    "AppError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ServiceUnavailable",
    "Unauthorized",
    "Unprocessable",
    "STORAGE_ERRORS",
    "add_storage_handlers",
    "storage_unavailable",
]

log = logging.getLogger("boxoffice.ticket_server")


# What the storage raises when it does not answer (redis-py's timeouts are RedisErrors; a
# cluster with no node for a slot raises RedisClusterException, which is not one).
STORAGE_ERRORS = (RedisError, RedisClusterException, DBAPIError)


def storage_unavailable(exc: Exception) -> ServiceUnavailable:
    """The 503 one of ``STORAGE_ERRORS`` becomes (logged here): for the routes' handlers and
    for the seat map's fast path alike."""
    if isinstance(exc, DBAPIError):
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return ServiceUnavailable("The catalog database is unavailable; try again shortly.")
    log.warning("redis unavailable: %s: %s", type(exc).__name__, exc)
    return ServiceUnavailable("Booking storage is unavailable; try again shortly.")


def add_storage_handlers(app: FastAPI) -> None:
    """Map Redis and database failures to 503 problems."""

    async def _storage(request: Request, exc: Exception) -> Response:
        # A value the database refused is the client's error, not an outage.
        if is_data_error(exc):
            return refused_value_response(exc, request_id_of(request))
        if not isinstance(exc, DBAPIError):
            # Redis work failing is what /readyz reports, not only a failing PING.
            health = getattr(request.app.state, "redis_health", None)
            if health is not None:
                health.failed(exc)
        return app_error_response(storage_unavailable(exc), request_id_of(request))

    for error in STORAGE_ERRORS:
        app.add_exception_handler(error, _storage)
