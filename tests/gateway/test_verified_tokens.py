"""The gateway keeps the claims of the tokens it issues (``shared/verified_tokens.py`` is
the store): a token it issued is not verified again, one signed elsewhere is, a forged one is
refused."""

from __future__ import annotations

import pytest

from gateway.testing import GatewayHarness
from shared.tokens import issue_access_token
from tests.fixtures.tokens import count_access_verifications

MINE = "/api/ticketing/me/reservations"


async def test_a_token_this_gateway_issued_is_not_verified_again(
    gateway: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = count_access_verifications(monkeypatch)
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
