"""One error base for every service and the handlers that render RFC 9457 bodies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type

log = logging.getLogger("boxoffice.errors")


class AppError(Exception):
    """An error with an HTTP status that becomes a problem+json response."""

    status: int = 500
    title: str = "Internal Server Error"
    slug: str | None = None

    def __init__(
        self,
        detail: str = "",
        *,
        title: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if title is not None:
            self.title = title
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.extra = extra


class BadRequest(AppError):
    """400: the request cannot be read as meant (e.g. two ``Authorization`` headers)."""

    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(AppError):
    """401: no valid access token; says so in ``WWW-Authenticate: Bearer``."""

    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str = "", **kw: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="boxoffice"', **kw.pop("headers", {})}
        super().__init__(detail, headers=headers, **kw)


class Forbidden(AppError):
    """403: known caller, not allowed (admission token, admin token)."""

    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(AppError):
    """404: unknown id, or another user's resource (which must not be told apart)."""

    status, title, slug = 404, "Not Found", "not-found"


class Conflict(AppError):
    """409: the current state refuses it (a seat taken, a hold expired, a key reused)."""

    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(AppError):
    """413: the body is over the limit."""

    status, title, slug = 413, "Content Too Large", "payload-too-large"


class Unprocessable(AppError):
    """422: well-formed input with invalid values."""

    status, title, slug = 422, "Unprocessable Content", "validation-error"


class RateLimited(AppError):
    """429: over a rate-limit policy."""

    status, title, slug = 429, "Too Many Requests", "rate-limited"


class ServiceUnavailable(AppError):
    """503: a dependency does not answer; ``Retry-After`` says when to retry."""

    status, title, slug = 503, "Service Unavailable", "unavailable"

    def __init__(self, detail: str = "", *, retry_after: int = 1, **kw: Any) -> None:
        headers = {"Retry-After": str(retry_after), **kw.pop("headers", {})}
        super().__init__(detail, headers=headers, **kw)


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
    body = problem_body(
        status=status,
        title=title,
        detail=detail,
        type_=problem_type(slug) if slug else None,
        request_id=request_id,
        **extra,
    )
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def app_error_response(exc: AppError, request_id: str | None) -> Response:
    """The problem+json response of an ``AppError``."""
    return problem_response(
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        slug=exc.slug,
        request_id=request_id,
        headers=exc.headers,
        **exc.extra,
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
        return problem_response(
            status=422,
            title="Unprocessable Content",
            detail="The request is malformed or has invalid fields.",
            slug="validation-error",
            request_id=request_id_of(request),
            errors=_jsonable_errors(exc.errors()),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
            # FastAPI turns a body that is not UTF-8 into a bare 400; API.md wants 422.
            return problem_response(
                status=422,
                title="Unprocessable Content",
                detail="The request body is not valid UTF-8 JSON.",
                slug="validation-error",
                request_id=request_id_of(request),
                errors=[{"loc": ["body"], "msg": "invalid UTF-8 JSON", "type": "json_invalid"}],
            )
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
        return problem_response(
            status=500,
            title="Internal Server Error",
            detail="An unexpected error occurred; it has been logged.",
            request_id=rid,
            headers={"X-Request-ID": rid} if rid else None,
        )
