"""Stage 6, admit: routes that book (``admission`` in the route table) need the waiting
room's admission token for this user and session (403 without a valid one)."""

from __future__ import annotations

import jwt

from gateway.front.context import RequestContext
from shared.tokens import InvalidToken, verify_admission_token
from svckit.problems import Forbidden


def admit(ctx: RequestContext, secret: str) -> None:
    """Verify ``X-Admission-Token`` (signature, expiry, user, session)."""
    match, user, token = ctx.match, ctx.user, ctx.admission
    assert match is not None
    assert user is not None  # admission routes require auth
    if not token:
        raise Forbidden("X-Admission-Token is required", slug="admission-required")
    try:
        raw = token.decode("ascii")
        session_id = match.session_id
        if session_id is None:
            # POST /api/ticketing/reservations: the session comes from the hold, which
            # ticket_server checks; here signature, expiry and user are what count.
            unverified = jwt.decode(raw, options={"verify_signature": False})
            sid = unverified.get("sid")
            if not isinstance(sid, int):
                raise InvalidToken("no session in admission token")
            session_id = sid
        verify_admission_token(raw, secret=secret, user_id=user.user_id, session_id=session_id)
    except (InvalidToken, UnicodeDecodeError, jwt.PyJWTError) as e:
        raise Forbidden(f"invalid admission token: {e}", slug="admission-invalid") from e
