"""Issuing guest identities."""

from __future__ import annotations

import time

from shared.schemas.auth import GuestToken
from shared.tokens import AccessClaims, issue_access_token, new_user_id


def create_guest(*, nickname: str, secret: str, ttl_s: int) -> tuple[GuestToken, AccessClaims]:
    """A fresh guest user id and an access token for it, with the token's claims."""
    user_id = new_user_id()
    now = int(time.time())
    token = issue_access_token(
        secret=secret, user_id=user_id, nickname=nickname, ttl_s=ttl_s, now=now
    )
    claims = AccessClaims(user_id=user_id, nickname=nickname, expires_at=now + ttl_s)
    guest = GuestToken(user_id=user_id, nickname=nickname, access_token=token, expires_in=ttl_s)
    return guest, claims
