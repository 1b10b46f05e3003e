"""Payload pieces used across the API."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer

T = TypeVar("T")


def price_json(value: Decimal) -> int | float:
    """A price as a JSON number (exact Decimal inside), as in API.md's examples."""
    return int(value) if value == value.to_integral_value() else float(value)


Price = Annotated[Decimal, PlainSerializer(price_json, return_type=int | float, when_used="json")]


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
