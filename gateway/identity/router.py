"""``POST /api/auth/guest``: a new guest identity and its access token."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from gateway.dependencies import SettingsDep
from gateway.identity.service import create_guest
from gateway.identity.tokens import VerifiedTokens
from shared.schemas.auth import GuestCreate, GuestToken
from shared.schemas.common import problem_responses

router = APIRouter()


@router.post(
    "/guest",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(422, 429),
)
async def create_guest_token(
    body: GuestCreate, settings: SettingsDep, request: Request
) -> GuestToken:
    """Create a guest user and return a signed, expiring Bearer access token."""
    guest, claims = create_guest(
        nickname=body.nickname, secret=settings.secret_key, ttl_s=settings.access_token_ttl_s
    )
    tokens: VerifiedTokens = request.app.state.access_tokens
    tokens.remember(guest.access_token, claims)
    return guest
