"""``POST /api/auth/guest``: a new guest identity and its access token."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, status
from starlette.datastructures import State

from gateway.config import Settings
from gateway.fastpath import FastCreate
from gateway.identity.service import create_guest
from shared.schemas.auth import GuestCreate, GuestToken
from shared.schemas.common import problem_responses
from shared.verified_tokens import VerifiedTokens

router = APIRouter()


@router.post(
    "/guest",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(422, 429),
)
async def create_guest_token(body: GuestCreate, request: Request) -> GuestToken:
    """Create a guest user and return a signed, expiring Bearer access token."""
    return issue_guest(request.app.state, body.nickname)


def issue_guest(state: State, nickname: str) -> GuestToken:
    """A new guest and its token, whose claims the gateway keeps (it need not verify its own
    signature when the token comes back)."""
    settings: Settings = state.settings
    guest, claims = create_guest(
        nickname=nickname, secret=settings.secret_key, ttl_s=settings.access_token_ttl_s
    )
    tokens: VerifiedTokens = state.access_tokens
    tokens.remember(guest.access_token, claims)
    return guest


def fast_creates(prefix: str) -> list[FastCreate]:
    """Guest login for the front layer's fast path (``gateway/front/local.py``): the whole crowd
    logs in before an on-sale, and FastAPI's routing, body handling and response validation
    were more than half of a login's CPU (406–445 → 206 µs in the gateway, BENCHMARKS.md).
    The route above stays: it documents the API and answers whatever the fast path declines
    (any body that is not a valid ``GuestCreate``)."""

    def fast_guest(state: State, body: bytes) -> bytes | None:
        try:
            # Read as FastAPI reads it: json.loads, then the model from the parsed value.
            payload = GuestCreate.model_validate(json.loads(body))
        except (ValueError, RecursionError):
            # Not JSON, not UTF-8, not a valid GuestCreate (a ValueError too), or nested too
            # deep to parse: the route answers it (422), whatever it is.
            return None
        return issue_guest(state, payload.nickname).model_dump_json().encode()

    return [FastCreate(f"{prefix}/guest", fast_guest)]
