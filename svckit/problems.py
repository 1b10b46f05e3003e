"""The one error type of every service and its one renderer (RFC 9457 problem+json).

``AppError`` and its subclasses are raised by routes, services and the gateway's front
stages alike. Two writers share :func:`problem_json`: FastAPI's exception handlers
(``svckit/errors.py``) and :func:`send_error`, which writes straight to ASGI ``send`` for
the pure-ASGI layers that answer before any framework does (the gateway's front stages, the
request-context middleware). No FastAPI here: the pure-ASGI layers must not need it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

import orjson

from shared.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

_CT_PROBLEM = (b"content-type", PROBLEM_CONTENT_TYPE.encode())


class AppError(Exception):
    """An error with an HTTP status that becomes a problem+json response.

    ``slug`` names the problem kind (its ``type`` URI); a subclass sets its own, and one
    instance may name a narrower kind (``BadRequest("...", slug="bad-path")``)."""

    status: int = 500
    title: str = "Internal Server Error"
    slug: str | None = None

    def __init__(
        self,
        detail: str = "",
        *,
        title: str | None = None,
        status: int | None = None,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if title is not None:
            self.title = title
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        self.headers = dict(headers or {})
        self.extra = extra


class BadRequest(AppError):
    """400: the request cannot be read as meant (e.g. two ``Authorization`` headers)."""

    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(AppError):
    """401: no valid access token; says so in ``WWW-Authenticate: Bearer``."""

    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str = "", *, token_given: bool = False, **kw: Any) -> None:
        # RFC 6750 §3: a token was sent and refused → error="invalid_token".
        challenge = 'Bearer realm="boxoffice"' + (', error="invalid_token"' if token_given else "")
        headers = {"WWW-Authenticate": challenge, **kw.pop("headers", {})}
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
    """413: the body is over the limit; the connection is closed (the rest is not read)."""

    status, title, slug = 413, "Content Too Large", "payload-too-large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body exceeds {limit} bytes.", headers={"Connection": "close"}
        )


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


class InternalError(AppError):
    """500: a bug; the answer says only that it was logged."""

    status, title, slug = 500, "Internal Server Error", "internal"

    def __init__(self) -> None:
        super().__init__("An unexpected error occurred; it has been logged.")


def problem_json(
    status: int,
    title: str,
    detail: str,
    slug: str | None,
    request_id: str | None,
    **extra: Any,
) -> bytes:
    """The problem+json body of a problem kind (``slug``; None → ``about:blank``)."""
    return orjson.dumps(
        problem_body(
            status=status,
            title=title,
            detail=detail,
            type_=problem_type(slug) if slug else None,
            request_id=request_id,
            **extra,
        )
    )


def error_json(err: AppError, request_id: str | None) -> bytes:
    """The problem+json body of ``err``."""
    return problem_json(err.status, err.title, err.detail, err.slug, request_id, **err.extra)


async def send_error(
    send: Send,
    err: AppError,
    request_id: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Write ``err`` as a whole problem+json response straight to ASGI ``send``, with its
    own headers, the request id and ``headers`` (CORS, rate-limit)."""
    body = error_json(err, request_id)
    out = [
        _CT_PROBLEM,
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    out.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items())
    out.extend(headers)
    await send({"type": "http.response.start", "status": err.status, "headers": out})
    await send({"type": "http.response.body", "body": body})
