"""Identity and admission are verified by ticket_server itself: 401 for a bad access token,
403 for a bad admission token, and no identity header is ever believed."""

from __future__ import annotations

import time

import pytest

from shared.tokens import issue_access_token, issue_admission_token
from tests.fixtures.tokens import count_access_verifications, count_admission_verifications
from tests.ticket_server.conftest import SECRET, CatalogSession, User
from tests.ticket_server.helpers import assert_problem, book, hold

pytestmark = pytest.mark.integration


def _routes(session_id: int) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        ("GET", f"/api/ticketing/sessions/{session_id}/seats", None),
        ("POST", f"/api/ticketing/sessions/{session_id}/holds", {"seat_ids": [1]}),
        ("POST", "/api/ticketing/reservations", {"hold_id": f"h_{session_id}_" + "0" * 32}),
        ("DELETE", f"/api/ticketing/holds/h_{session_id}_" + "0" * 32, None),
        ("GET", f"/api/ticketing/reservations/r_{session_id}_" + "0" * 32, None),
        ("DELETE", f"/api/ticketing/reservations/r_{session_id}_" + "0" * 32, None),
        ("GET", "/api/ticketing/me/reservations", None),
    ]


def _expired_access() -> str:
    return issue_access_token(
        secret=SECRET, user_id="u_x", nickname="x", ttl_s=1, now=time.time() - 3600
    )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer "
        + issue_access_token(
            secret="another-secret-0123456789abcdef-long-enough",
            user_id="u",
            nickname="n",
            ttl_s=60,
        ),
        "expired",
        "admission-as-access",
    ],
)
async def test_every_route_needs_a_valid_access_token(client, session, authorization):
    sid = session.session_id
    if authorization == "expired":
        authorization = "Bearer " + _expired_access()
    elif authorization == "admission-as-access":
        authorization = "Bearer " + User.new().admission(sid)
    for method, path, body in _routes(sid):
        headers = {"X-User-Id": "u_someone", "Idempotency-Key": "k"}
        if authorization is not None:
            headers["Authorization"] = authorization
        r = await client.request(method, path, headers=headers, json=body)
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].lower().startswith("bearer"), (method, path)


class TestAdmission:
    async def _check(self, client, session: CatalogSession, user: User, token: str | None):
        sid = session.session_id
        headers = user.auth()
        if token is not None:
            headers["X-Admission-Token"] = token
        r = await client.get(f"/api/ticketing/sessions/{sid}/seats", headers=headers)
        assert_problem(r, 403)
        r = await client.post(
            f"/api/ticketing/sessions/{sid}/holds", headers=headers, json={"seat_ids": [1]}
        )
        assert_problem(r, 403)

    async def test_missing(self, client, session):
        await self._check(client, session, User.new(), None)

    async def test_forged(self, client, session):
        u = User.new()
        forged = u.admission(
            session.session_id, secret="another-secret-0123456789abcdef-long-enough"
        )
        await self._check(client, session, u, forged)

    async def test_expired(self, client, session):
        u = User.new()
        token, _ = issue_admission_token(
            secret=SECRET,
            user_id=u.user_id,
            session_id=session.session_id,
            queue_position=1,
            ttl_s=1,
            now=time.time() - 3600,
        )
        await self._check(client, session, u, token)

    async def test_other_session(self, client, session):
        u = User.new()
        await self._check(client, session, u, u.admission(session.session_id + 1))

    async def test_other_user(self, client, session):
        u, other = User.new(), User.new()
        await self._check(client, session, u, other.admission(session.session_id))

    async def test_access_token_as_admission(self, client, session):
        u = User.new()
        await self._check(client, session, u, u.token)

    async def test_confirm_needs_admission_of_the_holds_session(self, client, session, clean_db):
        from tests.ticket_server.conftest import create_session

        u = User.new()
        sid = session.session_id
        hold_id = (await hold(client, u, sid, session.seat_ids[:1])).json()["hold_id"]
        other = create_session(clean_db, seats=1)
        for headers in (
            {**u.auth(), "Idempotency-Key": "k"},
            {**u.headers(other.session_id), "Idempotency-Key": "k"},
        ):
            r = await client.post(
                "/api/ticketing/reservations", headers=headers, json={"hold_id": hold_id}
            )
            assert_problem(r, 403)

    async def test_reading_cancelling_releasing_need_auth_only(self, client, session):
        u = User.new()
        sid = session.session_id
        res = await book(client, u, sid, session.seat_ids[:1])
        rid = res["reservation_id"]
        assert (
            await client.get(f"/api/ticketing/reservations/{rid}", headers=u.auth())
        ).status_code == 200
        assert (
            await client.get("/api/ticketing/me/reservations", headers=u.auth())
        ).status_code == 200
        assert (
            await client.delete(f"/api/ticketing/reservations/{rid}", headers=u.auth())
        ).status_code == 204
        hold_id = (await hold(client, u, sid, session.seat_ids[1:2])).json()["hold_id"]
        assert (
            await client.delete(f"/api/ticketing/holds/{hold_id}", headers=u.auth())
        ).status_code == 204


async def test_x_user_id_is_never_believed(client, session):
    owner, intruder = User.new(), User.new()
    res = await book(client, owner, session.session_id, session.seat_ids[:1])
    rid = res["reservation_id"]
    headers = {**intruder.auth(), "X-User-Id": owner.user_id}
    assert_problem(await client.get(f"/api/ticketing/reservations/{rid}", headers=headers), 404)
    assert_problem(await client.delete(f"/api/ticketing/reservations/{rid}", headers=headers), 404)


async def test_cached_token_verdicts_end_at_the_tokens_expiry(client, session, monkeypatch):
    # ticket_server keeps the claims of the tokens it verified (shared/verified_tokens.py):
    # while a token is valid it is verified once; past its expiry the cache no longer answers.
    u = User.new()
    sid = session.session_id
    url = f"/api/ticketing/sessions/{sid}/seats"
    access = count_access_verifications(monkeypatch)
    admission = count_admission_verifications(monkeypatch)
    headers = u.headers(sid)
    for _ in range(3):
        assert (await client.get(url, headers=headers)).status_code == 200
    assert (len(access), len(admission)) == (1, 1)

    class _Later:
        @staticmethod
        def time() -> float:
            return time.time() + 7200  # past both tokens' expiry (and the leeway)

    monkeypatch.setattr("shared.verified_tokens.time", _Later)
    await client.get(url, headers=headers)  # the verifier (on the real clock) decides
    assert (len(access), len(admission)) == (2, 2)
