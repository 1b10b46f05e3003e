"""The gateway keeps the claims of the tokens it issues (``shared/verified_tokens.py`` is
the store): a token it issued is not verified again, one signed elsewhere is, a forged one is
refused."""

from __future__ import annotations

import pytest

import shared.verified_tokens as tokens_module
from gateway.testing import GatewayHarness
from shared.tokens import AccessClaims, issue_access_token, verify_access_token

MINE = "/api/ticketing/me/reservations"


def _count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = verify_access_token

    def counting(token: str, *, secret: str) -> AccessClaims:
        seen.append(token)
        return real(token, secret=secret)

    monkeypatch.setattr(tokens_module, "verify_access_token", counting)
    return seen


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
