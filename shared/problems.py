"""RFC 9457 problem details: the one error shape of every service."""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://boxoffice.dev/problems/"


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem kind, e.g. ``problem_type("seat-conflict")``."""
    return TYPE_BASE + slug


def problem_body(
    *,
    status: int,
    title: str,
    detail: str = "",
    type_: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A problem document; ``extra`` holds the kind's additional members."""
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request_id is not None:
        body["request_id"] = request_id
    body.update(extra)
    return body
