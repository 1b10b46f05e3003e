"""Stage 4, authenticate: the Bearer access token, verified once (``VerifiedTokens``).

A route marked ``auth`` in the route table needs a valid one (401); on the others a token
that does not verify is ignored and the request is anonymous."""

from __future__ import annotations

from gateway.front.context import RequestContext
from shared.tokens import InvalidToken
from shared.verified_tokens import VerifiedTokens
from svckit.problems import Unauthorized


def authenticate(ctx: RequestContext, tokens: VerifiedTokens) -> None:
    """Set ``ctx.user`` (and ``scope["state"]["user"]`` for the FastAPI routes)."""
    assert ctx.match is not None
    required = ctx.match.route.auth
    authorization = ctx.authorization
    user = None
    if authorization is not None:
        scheme, _, token = authorization.partition(b" ")
        try:
            if scheme.lower() != b"bearer" or not token:
                raise InvalidToken("not a Bearer token")
            user = tokens.verify(token.strip().decode("ascii"))
        except (InvalidToken, UnicodeDecodeError) as e:
            if required:
                raise Unauthorized(f"invalid access token: {e}", token_given=True) from e
    elif required:
        raise Unauthorized("an access token is required")
    ctx.user = user
    ctx.scope["state"]["user"] = user
