"""The FastAPI side of the one error type (``svckit/problems.py``): the exception handlers
that render every error, expected or not, as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.problems import PROBLEM_CONTENT_TYPE
from svckit.problems import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    error_json,
    problem_json,
)

__all__ = [
    "AppError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InternalError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "Unprocessable",
    "add_exception_handlers",
    "app_error_response",
    "problem_response",
    "request_id_of",
]

log = logging.getLogger("boxoffice.errors")


def request_id_of(request: Request) -> str | None:
    """The request id the request-id middleware put in the scope."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


def problem_response(
    *,
    status: int,
    title: str,
    detail: str = "",
    slug: str | None = None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response."""
    body = problem_json(status, title, detail, slug, request_id, **extra)
    return Response(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def app_error_response(exc: AppError, request_id: str | None) -> Response:
    """The problem+json response of an ``AppError``."""
    return Response(
        error_json(exc, request_id),
        status_code=exc.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=exc.headers,
    )


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) if not isinstance(p, int) else p for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"
_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def add_exception_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, as problem+json with the request id."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return app_error_response(exc, request_id_of(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = _jsonable_errors(exc.errors())
        invalid = Unprocessable("The request is malformed or has invalid fields.", errors=errors)
        return app_error_response(invalid, request_id_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
            # FastAPI turns a body that is not UTF-8 into a bare 400; API.md wants 422.
            errors = [{"loc": ["body"], "msg": "invalid UTF-8 JSON", "type": "json_invalid"}]
            invalid = Unprocessable("The request body is not valid UTF-8 JSON.", errors=errors)
            return app_error_response(invalid, request_id_of(request))
        title = _STATUS_TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else ""
        return problem_response(
            status=exc.status_code,
            title=title,
            detail=detail,
            request_id=request_id_of(request),
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        rid = request_id_of(request)
        log.exception("unhandled error", extra={"request_id": rid})
        # Rendered outside the middleware stack, so the request id header is set here too.
        response = app_error_response(InternalError(), rid)
        if rid:
            response.headers["X-Request-ID"] = rid
        return response
