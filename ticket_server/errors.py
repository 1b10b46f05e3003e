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

from svckit.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    problem_response,
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
    "add_storage_handlers",
]

log = logging.getLogger("boxoffice.ticket_server")


def _unavailable(request: Request, detail: str) -> Response:
    return problem_response(
        status=503,
        title="Service Unavailable",
        detail=detail,
        slug="unavailable",
        request_id=request_id_of(request),
        headers={"Retry-After": "1"},
    )


def add_storage_handlers(app: FastAPI) -> None:
    """Map Redis and database failures to 503 problems."""

    @app.exception_handler(RedisError)
    @app.exception_handler(RedisClusterException)  # not a RedisError (no node for a slot)
    async def _redis(request: Request, exc: Exception) -> Response:
        log.warning("redis unavailable: %s: %s", type(exc).__name__, exc)
        health = getattr(request.app.state, "redis_health", None)
        if health is not None:
            health.failed(exc)
        return _unavailable(request, "Booking storage is unavailable; try again shortly.")

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> Response:
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return _unavailable(request, "The catalog database is unavailable; try again shortly.")
