"""Claims of the tokens this process has verified (or signed itself), until they expire.

Verifying an HS256 JWT (PyJWT) costs about as much as the rest of a hot request's work (see
BENCHMARKS.md), and a client sends the same tokens on every request. So each service keeps
the claims of the tokens it has verified and answers from them until the token's expiry
(with the verifier's own leeway, so a cached answer is the one verifying would give). Only
successes are kept: a forged, foreign or expired token is verified, and refused, every time.
The store is bounded; a miss costs one verification. Pure data, no I/O: any service may
hold one (the gateway also records the tokens it issues, which then need no verification).
"""

from __future__ import annotations

import time
from typing import TypeVar

from shared.tokens import (
    LEEWAY_S,
    AccessClaims,
    AdmissionClaims,
    InvalidToken,
    verify_access_token,
    verify_admission_token,
)

MAX_TOKENS = 20_000

C = TypeVar("C", AccessClaims, AdmissionClaims)


class VerifiedTokens:
    """Claims by token, for access and admission tokens verified here (or issued here)."""

    def __init__(self, secret: str, *, max_tokens: int = MAX_TOKENS) -> None:
        self._secret = secret
        self._max = max_tokens
        self._claims: dict[str, AccessClaims] = {}
        self._admissions: dict[str, AdmissionClaims] = {}

    def verify(self, token: str) -> AccessClaims:
        """The token's claims; ``InvalidToken`` unless it is a valid, unexpired access token."""
        claims = self._claims.get(token)
        if claims is not None:
            if time.time() <= claims.expires_at + LEEWAY_S:
                return claims
            del self._claims[token]
        claims = verify_access_token(token, secret=self._secret)
        self.remember(token, claims)
        return claims

    def remember(self, token: str, claims: AccessClaims) -> None:
        """Record the claims of an access token known to be valid (verified, or signed here)."""
        _bounded_put(self._claims, token, claims, self._max)

    def verify_admission(self, token: str, *, user_id: str, session_id: int) -> AdmissionClaims:
        """The claims of a valid, unexpired admission token for exactly this user and
        session; else ``InvalidToken``."""
        claims = self._admissions.get(token)
        if claims is not None:
            if time.time() <= claims.expires_at + LEEWAY_S:
                # Cached under the token alone: the binding is checked on every use.
                if claims.user_id != user_id or claims.session_id != session_id:
                    raise InvalidToken("admission token is for another user or session")
                return claims
            del self._admissions[token]
        claims = verify_admission_token(
            token, secret=self._secret, user_id=user_id, session_id=session_id
        )
        _bounded_put(self._admissions, token, claims, self._max)
        return claims


def _bounded_put(store: dict[str, C], token: str, claims: C, limit: int) -> None:
    if len(store) >= limit:
        store.clear()  # cheap bound; a miss only costs one verification
    store[token] = claims
