"""api_server's errors: svckit's problem+json family, plus the reshaping of body-parsing
failures that FastAPI reports as a bare 400."""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

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
    "add_body_error_handler",
    "add_exception_handlers",
    "problem_response",
]


def add_body_error_handler(app: FastAPI, *, max_body_bytes: int) -> None:
    """Turn FastAPI's "error parsing the body" 400 into the statuses API.md promises.

    FastAPI maps only ``JSONDecodeError`` to a validation error; a body that is not UTF-8
    (``UnicodeDecodeError``) becomes a bare 400, and so does the request-context
    middleware's over-limit signal when a chunked body (no Content-Length) passes the limit,
    because FastAPI catches every exception raised while reading the body. API.md wants 422
    and 413. Must run after ``install_common`` (it wraps svckit's handler).
    """
    inner = app.exception_handlers[StarletteHTTPException]

    async def handler(request: Request, exc: Exception) -> Response:
        cause = exc.__cause__
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 400 and cause:
            if type(cause).__name__ == "_TooLarge":  # svckit.middleware's private signal
                return problem_response(
                    status=413,
                    title="Content Too Large",
                    detail=f"The request body exceeds {max_body_bytes} bytes.",
                    slug="payload-too-large",
                    request_id=request_id_of(request),
                    headers={"Connection": "close"},
                )
            if isinstance(cause, ValueError):  # UnicodeDecodeError and friends
                return problem_response(
                    status=422,
                    title="Unprocessable Content",
                    detail="The request body is not valid UTF-8 JSON.",
                    slug="validation-error",
                    request_id=request_id_of(request),
                    errors=[{"loc": ["body"], "msg": str(cause)[:200], "type": "json_invalid"}],
                )
        response = inner(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, handler)
