"""Payload pieces used across the API."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Problem(BaseModel):
    """RFC 9457 problem details (documented in OpenAPI for every error response)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str = ""
    request_id: str | None = None


class Page(BaseModel, Generic[T]):
    """One page of a paginated list."""

    items: list[T]
    total: int
    offset: int
    limit: int


class Items(BaseModel, Generic[T]):
    """A plain list wrapper (``{"items": [...]}``)."""

    items: list[T]


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry documenting problem+json errors."""
    return {s: {"model": Problem, "content": {"application/problem+json": {}}} for s in statuses}
