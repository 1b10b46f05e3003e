"""Token signing and verification rules."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.tokens import (
    InvalidToken,
    issue_access_token,
    issue_admission_token,
    verify_access_token,
    verify_admission_token,
)

SECRET = "s" * 40


class TestAccessToken:
    def test_round_trip(self) -> None:
        token = issue_access_token(secret=SECRET, user_id="u1", nickname="Ann", ttl_s=60)
        claims = verify_access_token(token, secret=SECRET)
        assert (claims.user_id, claims.nickname) == ("u1", "Ann")

    def test_expired_is_refused(self) -> None:
        token = issue_access_token(
            secret=SECRET, user_id="u1", nickname="Ann", ttl_s=1, now=time.time() - 100
        )
        with pytest.raises(InvalidToken):
            verify_access_token(token, secret=SECRET)

    def test_other_key_is_refused(self) -> None:
        token = issue_access_token(secret="x" * 40, user_id="u1", nickname="Ann", ttl_s=60)
        with pytest.raises(InvalidToken):
            verify_access_token(token, secret=SECRET)

    def test_alg_none_is_refused(self) -> None:
        now = int(time.time())
        claims = {"sub": "u1", "nick": "A", "typ": "access", "iat": now, "exp": now + 60}
        token = jwt.encode(claims, key="", algorithm="none")
        with pytest.raises(InvalidToken):
            verify_access_token(token, secret=SECRET)

    def test_admission_token_is_not_an_access_token(self) -> None:
        token, _ = issue_admission_token(
            secret=SECRET, user_id="u1", session_id=1, queue_position=1, ttl_s=60
        )
        with pytest.raises(InvalidToken):
            verify_access_token(token, secret=SECRET)

    @pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "\u00e9.\u00e9.\u00e9"])
    def test_garbage_is_refused(self, garbage: str) -> None:
        with pytest.raises(InvalidToken):
            verify_access_token(garbage, secret=SECRET)


class TestAdmissionToken:
    def test_bound_to_user_and_session(self) -> None:
        token, exp = issue_admission_token(
            secret=SECRET, user_id="u1", session_id=7, queue_position=3, ttl_s=60
        )
        claims = verify_admission_token(token, secret=SECRET, user_id="u1", session_id=7)
        assert claims.queue_position == 3
        assert claims.expires_at == exp
        with pytest.raises(InvalidToken):
            verify_admission_token(token, secret=SECRET, user_id="u2", session_id=7)
        with pytest.raises(InvalidToken):
            verify_admission_token(token, secret=SECRET, user_id="u1", session_id=8)

    def test_access_token_is_not_an_admission(self) -> None:
        token = issue_access_token(secret=SECRET, user_id="u1", nickname="Ann", ttl_s=60)
        with pytest.raises(InvalidToken):
            verify_admission_token(token, secret=SECRET, user_id="u1", session_id=7)
