"""Access tokens this gateway instance has verified or issued, with their claims.

Every request of a signed-in user carries the same token, and verifying it (PyJWT, HS256)
costs about 37 µs. In the opening second of an on-sale a fifth of the gateway's time went
to verifying, on each waiter's first request, tokens it had itself signed seconds before.
A token it issued needs no verification, and the user's next requests usually come on the
same keep-alive connection, so to this instance: issuing records the claims too. Claims
are dropped at the token's expiry; the store is bounded (a miss costs one verification)."""

from __future__ import annotations

import time

from shared.tokens import AccessClaims, verify_access_token

MAX_TOKENS = 20_000


class VerifiedTokens:
    """Claims by access token, for tokens verified or issued here (valid until they expire)."""

    def __init__(self, secret: str, *, max_tokens: int = MAX_TOKENS) -> None:
        self._secret = secret
        self._max = max_tokens
        self._claims: dict[str, AccessClaims] = {}

    def verify(self, token: str) -> AccessClaims:
        """The token's claims; ``InvalidToken`` unless it is a valid, unexpired access token."""
        claims = self._claims.get(token)
        if claims is not None:
            if claims.expires_at > time.time():
                return claims
            del self._claims[token]
        claims = verify_access_token(token, secret=self._secret)
        self.remember(token, claims)
        return claims

    def remember(self, token: str, claims: AccessClaims) -> None:
        """Record the claims of a token known to be valid (verified, or signed here)."""
        if len(self._claims) >= self._max:
            self._claims.clear()  # cheap bound; a miss only costs one verification
        self._claims[token] = claims
