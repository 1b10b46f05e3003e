"""Issuing guest identities."""

from __future__ import annotations

from shared.schemas.auth import GuestToken
from shared.tokens import issue_access_token, new_user_id


def create_guest(*, nickname: str, secret: str, ttl_s: int) -> GuestToken:
    """A fresh guest user id and an access token for it."""
    user_id = new_user_id()
    token = issue_access_token(secret=secret, user_id=user_id, nickname=nickname, ttl_s=ttl_s)
    return GuestToken(user_id=user_id, nickname=nickname, access_token=token, expires_in=ttl_s)
