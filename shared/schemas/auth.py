"""Identity payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GuestCreate(BaseModel):
    """Body of ``POST /api/auth/guest``."""

    model_config = ConfigDict(extra="forbid")

    nickname: str = Field(min_length=1, max_length=32)

    @field_validator("nickname")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("nickname must be 1..32 printable characters")
        return value


class GuestToken(BaseModel):
    """A new guest identity and its bearer token."""

    user_id: str
    nickname: str
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
