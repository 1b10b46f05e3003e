"""Signing and verifying the two bearer tokens: access tokens (who you are) and admission
tokens (you may book in this session now), HS256 JWTs via PyJWT; every service verifies
them itself with the same secret, none trusts another's word. Also the waiting room's
queue tickets (a compact HMAC: one is checked on every status poll)."""

from __future__ import annotations

import base64
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ACCESS = "access"
ADMISSION = "admission"
# Clock skew tolerated on ``exp``, by the verifier and by every cache of its verdicts.
LEEWAY_S = 2


class InvalidToken(Exception):
    """Missing, malformed, forged, expired, or meant for another user/session/purpose."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """Who the bearer is."""

    user_id: str
    nickname: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class AdmissionClaims:
    """What an admission token grants: booking in ``session_id`` for ``user_id``."""

    user_id: str
    session_id: int
    queue_position: int | None
    expires_at: int
    token_id: str


def new_user_id() -> str:
    """A fresh guest user id."""
    return f"u_{uuid.uuid4().hex}"


def issue_access_token(
    *, secret: str, user_id: str, nickname: str, ttl_s: int, now: float | None = None
) -> str:
    """A signed access token for a guest user."""
    iat = int(now if now is not None else time.time())
    claims = {"sub": user_id, "nick": nickname, "typ": ACCESS, "iat": iat, "exp": iat + ttl_s}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def issue_admission_token(
    *,
    secret: str,
    user_id: str,
    session_id: int,
    queue_position: int | None,
    ttl_s: int,
    now: float | None = None,
) -> tuple[str, int]:
    """A signed admission token bound to (user, session); returns it and its expiry (epoch s)."""
    iat = int(now if now is not None else time.time())
    exp = iat + ttl_s
    claims = {
        "sub": user_id,
        "sid": session_id,
        "qpos": queue_position,
        "typ": ADMISSION,
        "iat": iat,
        "exp": exp,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), exp


def _ticket_mac(secret: str, user_id: str, session_id: int, line: int, gen: int) -> str:
    mac = hmac.new(secret.encode(), f"qt:{session_id}:{user_id}:{line}:{gen}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()[:16]).decode("ascii").rstrip("=")


def issue_queue_ticket(
    *, secret: str, user_id: str, session_id: int, line: int, gen: int = 0
) -> str:
    """A signed queue ticket: the holder's place in line (its line number; negative: its
    pre-queue entry), bound to (user, session) and to the line's generation ``gen`` (a line
    Redis lost and started again has another, and its numbers mean other people). A gateway
    answers the holder's status polls from memory with it, without asking Redis where the
    user stands."""
    return f"{line}.{_ticket_mac(secret, user_id, session_id, line, gen)}"


def verify_queue_ticket(
    ticket: str, *, secret: str, user_id: str, session_id: int, gen: int = 0
) -> int | None:
    """The line number in a valid ticket of this user, session and line generation, else
    None."""
    line_s, _, mac = ticket.partition(".")
    try:
        line = int(line_s)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _ticket_mac(secret, user_id, session_id, line, gen)):
        return None
    return line


def _decode(token: str, secret: str, typ: str) -> dict[str, object]:
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # a fixed list: alg=none and key confusion are refused
            options={"require": ["exp", "iat", "sub", "typ"]},
            leeway=LEEWAY_S,
        )
    except jwt.PyJWTError as e:
        raise InvalidToken(str(e)) from e
    if claims.get("typ") != typ or not isinstance(claims.get("sub"), str):
        raise InvalidToken(f"not an {typ} token")
    return claims


def verify_access_token(token: str, *, secret: str) -> AccessClaims:
    """The claims of a valid access token, else ``InvalidToken``."""
    claims = _decode(token, secret, ACCESS)
    nick = claims.get("nick")
    exp = claims["exp"]
    if not isinstance(nick, str) or not isinstance(exp, int):
        raise InvalidToken("malformed claims")
    return AccessClaims(user_id=str(claims["sub"]), nickname=nick, expires_at=exp)


def verify_admission_token(
    token: str, *, secret: str, user_id: str, session_id: int
) -> AdmissionClaims:
    """The claims of a valid admission token for exactly this user and session."""
    claims = _decode(token, secret, ADMISSION)
    sid, qpos, exp, jti = claims.get("sid"), claims.get("qpos"), claims["exp"], claims.get("jti")
    if not isinstance(sid, int) or not isinstance(exp, int) or not isinstance(jti, str):
        raise InvalidToken("malformed claims")
    if qpos is not None and not isinstance(qpos, int):
        raise InvalidToken("malformed claims")
    if claims["sub"] != user_id:
        raise InvalidToken("admission token belongs to another user")
    if sid != session_id:
        raise InvalidToken("admission token is for another session")
    return AdmissionClaims(
        user_id=user_id, session_id=sid, queue_position=qpos, expires_at=exp, token_id=jti
    )
