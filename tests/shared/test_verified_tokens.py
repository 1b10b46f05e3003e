"""The store of verified tokens every service keeps: a token is verified once while it is
valid, cached claims end at the token's expiry, forged or foreign tokens are still refused,
an admission token's cached claims stay bound to its user and session."""

from __future__ import annotations

import time

import pytest

from shared.tokens import (
    AccessClaims,
    AdmissionClaims,
    InvalidToken,
    issue_access_token,
    issue_admission_token,
)
from shared.verified_tokens import VerifiedTokens
from tests.fixtures.tokens import count_access_verifications, count_admission_verifications

SECRET = "verified-tokens-secret-0123456789abcdef012345"


def test_a_token_is_verified_once_while_it_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_access_verifications(monkeypatch)
    store = VerifiedTokens(SECRET)
    token = issue_access_token(secret=SECRET, user_id="u_1", nickname="a", ttl_s=60)
    assert store.verify(token) == store.verify(token)
    assert store.verify(token).user_id == "u_1"
    assert seen == [token]


def test_claims_end_at_the_tokens_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    store = VerifiedTokens(SECRET)
    issued_at = time.time() - 100
    token = issue_access_token(secret=SECRET, user_id="u_2", nickname="b", ttl_s=90, now=issued_at)
    # Remembered as if it were still valid; the store itself must notice the expiry.
    store.remember(token, AccessClaims("u_2", "b", expires_at=int(issued_at) + 90))
    with pytest.raises(InvalidToken):
        store.verify(token)


def test_forged_and_foreign_tokens_are_refused() -> None:
    store = VerifiedTokens(SECRET)
    other = issue_access_token(
        secret="another-secret-" + "x" * 32, user_id="u", nickname="n", ttl_s=60
    )
    for token in (other, "junk", other[:-2] + "AA"):
        with pytest.raises(InvalidToken):
            store.verify(token)


def test_the_store_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_access_verifications(monkeypatch)
    store = VerifiedTokens(SECRET, max_tokens=3)
    issued = [
        issue_access_token(secret=SECRET, user_id=f"u_{i}", nickname="n", ttl_s=60)
        for i in range(5)
    ]
    for token in issued:
        store.verify(token)
    assert len(store._claims) <= 3
    store.verify(issued[0])  # dropped by the bound: verified again, still valid
    assert seen.count(issued[0]) == 2


def test_an_admission_is_verified_once_and_stays_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_admission_verifications(monkeypatch)
    store = VerifiedTokens(SECRET)
    token, _ = issue_admission_token(
        secret=SECRET, user_id="u_1", session_id=7, queue_position=3, ttl_s=60
    )
    first = store.verify_admission(token, user_id="u_1", session_id=7)
    assert store.verify_admission(token, user_id="u_1", session_id=7) == first
    assert (first.session_id, first.queue_position) == (7, 3)
    assert seen == [token]
    # Cached under the token alone, yet never good for another user or session.
    for user_id, session_id in (("u_2", 7), ("u_1", 8)):
        with pytest.raises(InvalidToken):
            store.verify_admission(token, user_id=user_id, session_id=session_id)


def test_a_foreign_admission_is_never_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_admission_verifications(monkeypatch)
    store = VerifiedTokens(SECRET)
    token, _ = issue_admission_token(
        secret=SECRET, user_id="u_1", session_id=7, queue_position=None, ttl_s=60
    )
    for _ in range(2):
        with pytest.raises(InvalidToken):
            store.verify_admission(token, user_id="u_2", session_id=7)
    assert seen == [token, token]


def test_admission_claims_end_at_the_tokens_expiry() -> None:
    store = VerifiedTokens(SECRET)
    issued_at = time.time() - 100
    token, exp = issue_admission_token(
        secret=SECRET, user_id="u_1", session_id=7, queue_position=None, ttl_s=90, now=issued_at
    )
    store._admissions[token] = AdmissionClaims("u_1", 7, None, expires_at=exp, token_id="t")
    with pytest.raises(InvalidToken):
        store.verify_admission(token, user_id="u_1", session_id=7)
