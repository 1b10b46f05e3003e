"""api_server's errors: svckit's problem+json family (one error base for every service).

Bad input is 422 (validation or ``Unprocessable``), unknown ids 404, the admin check
401/403; body-parsing failures (non-UTF-8, over the size limit) are reshaped by svckit
itself. The one addition: a database that cannot be reached is a 503 with ``Retry-After``
(the client may retry), not an anonymous 500; a value the database refuses is a 422.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.responses import Response

from svckit.db_errors import is_data_error, refused_value_response
from svckit.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    add_exception_handlers,
    problem_response,
    request_id_of,
)

log = logging.getLogger("boxoffice.api_server")

__all__ = [
    "AppError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "Unauthorized",
    "Unprocessable",
    "add_database_error_handler",
    "add_exception_handlers",
    "problem_response",
]


def add_database_error_handler(app: FastAPI) -> None:
    """Render a value the database refused as a 422 problem, and "cannot reach the
    database" (any other ``OperationalError``) as a 503 problem."""

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: Exception) -> Response:
        rid = request_id_of(request)
        if is_data_error(exc):
            return refused_value_response(exc, rid)
        if not isinstance(exc, OperationalError):
            raise exc  # a bug, not an outage: the unexpected-error handler logs it (500)
        log.warning("database unavailable: %s", str(exc)[:300], extra={"request_id": rid})
        return problem_response(
            status=503,
            title="Service Unavailable",
            detail="The database is not available; retry shortly.",
            slug="database-unavailable",
            request_id=rid,
            headers={"Retry-After": "1"},
        )
