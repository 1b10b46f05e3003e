"""What a database error means: the statement's data was refused, or the database is not
available. One classifier for every service and the worker, so that a value the database
refuses (MariaDB answers a denormal float in a CHECK with an ``OperationalError``) is never
mistaken for an outage (503, retried forever) nor the other way round."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.responses import Response

from svckit.errors import problem_response

log = logging.getLogger("boxoffice.errors")

# MySQL / MariaDB error numbers that refuse a value of the statement, not the connection:
# NULL into NOT NULL, out of range, truncated, bad datetime, incorrect or illegal value,
# too long, BIGINT value out of range, CHECK violated (MySQL 3819, MariaDB 4025).
# pymysql raises several of these as ``OperationalError`` (its default for unknown numbers).
DATA_ERRNOS = frozenset({1048, 1264, 1265, 1292, 1366, 1367, 1406, 1690, 3819, 4025})


def is_data_error(exc: BaseException) -> bool:
    """Whether the database refused the statement's data (a client error, 422)."""
    if isinstance(exc, DataError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in DATA_ERRNOS
    # SQLite names the violated CHECK in its message; a unique or foreign key violation is
    # another matter (the caller's conflict or bug).
    return isinstance(exc, IntegrityError) and str(exc.orig).startswith("CHECK constraint failed")


def refused_value_response(exc: BaseException, request_id: str | None) -> Response:
    """The 422 problem of a value the database refused (logged briefly: a client error)."""
    log.info("database refused a value: %s", str(exc)[:300], extra={"request_id": request_id})
    return problem_response(
        status=422,
        title="Unprocessable Content",
        detail="The database refused a value of the request.",
        slug="validation-error",
        request_id=request_id,
    )
