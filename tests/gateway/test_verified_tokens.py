"""The gateway's store of verified access tokens: issued tokens need no verification, cached
claims end at the token's expiry, forged or foreign tokens are still refused."""

from __future__ import annotations

import time

import pytest

import gateway.identity.tokens as tokens_module
from gateway.identity.tokens import VerifiedTokens
from gateway.testing import GatewayHarness
from shared.tokens import AccessClaims, InvalidToken, issue_access_token, verify_access_token

SECRET = "verified-tokens-secret-0123456789abcdef012345"
MINE = "/api/ticketing/me/reservations"


def _count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = verify_access_token

    def counting(token: str, *, secret: str) -> AccessClaims:
        seen.append(token)
        return real(token, secret=secret)

    monkeypatch.setattr(tokens_module, "verify_access_token", counting)
    return seen


def test_a_token_is_verified_once_while_it_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _count_verifications(monkeypatch)
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
    seen = _count_verifications(monkeypatch)
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


async def test_a_token_this_gateway_issued_is_not_verified_again(
    gateway: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _count_verifications(monkeypatch)
    gateway.ticket.get(MINE).respond(200, json={"items": []})
    body = (await gateway.client.post("/api/auth/guest", json={"nickname": "a"})).json()
    r = await gateway.client.get(MINE, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200
    assert seen == []
    # A token signed elsewhere with the same secret (another instance) is verified here.
    elsewhere = issue_access_token(
        secret=gateway.settings.secret_key, user_id="u_x", nickname="x", ttl_s=60
    )
    r = await gateway.client.get(MINE, headers={"Authorization": f"Bearer {elsewhere}"})
    assert r.status_code == 200
    assert seen == [elsewhere]
    # A forged one is refused as before.
    forged = elsewhere[:-4] + ("AAAA" if not elsewhere.endswith("AAAA") else "BBBB")
    r = await gateway.client.get(MINE, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
