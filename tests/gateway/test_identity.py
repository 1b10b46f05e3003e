"""Guest tokens, token errors on auth routes, admission tokens, identity-header stripping."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest

from gateway.testing import GatewayHarness
from shared.tokens import issue_access_token, issue_admission_token, verify_access_token

SEATS = "/api/ticketing/sessions/7/seats"
MINE = "/api/ticketing/me/reservations"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


class TestGuest:
    async def test_issues_a_verifiable_token(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.post("/api/auth/guest", json={"nickname": "  Mina "})
        assert r.status_code == 201
        body = r.json()
        assert body["token_type"] == "bearer"
        assert body["nickname"] == "Mina"
        assert body["expires_in"] == gateway.settings.access_token_ttl_s
        claims = verify_access_token(body["access_token"], secret=gateway.settings.secret_key)
        assert claims.user_id == body["user_id"]
        assert not gateway.router.calls  # answered by the gateway itself

    @pytest.mark.parametrize(
        "payload", [{}, {"nickname": ""}, {"nickname": "x" * 33}, {"nickname": 5}, {"x": 1}]
    )
    async def test_bad_input_is_422(self, gateway: GatewayHarness, payload: object) -> None:
        r = await gateway.client.post("/api/auth/guest", json=payload)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"

    async def test_malformed_json_is_422(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.post(
            "/api/auth/guest", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422

    async def test_token_works_on_ticketing(self, gateway: GatewayHarness) -> None:
        route = gateway.ticket.get(MINE).respond(200, json={"items": []})
        token = (await gateway.client.post("/api/auth/guest", json={"nickname": "a"})).json()[
            "access_token"
        ]
        r = await gateway.client.get(MINE, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        # The Authorization header is forwarded: the backend verifies it itself.
        assert route.calls.last.request.headers["authorization"] == f"Bearer {token}"


def _without_ids(response: httpx.Response) -> dict[str, object]:
    """The JSON body without what differs between two answers to the same request."""
    body = dict(response.json())
    for volatile in ("user_id", "access_token", "request_id"):
        body.pop(volatile, None)
    return body


class TestGuestFastPath:
    """The front layer answers guest logins itself (``fast_creates`` in
    gateway/identity/router.py). It must answer exactly as the FastAPI route does, which
    still answers whatever the fast path declines."""

    JSON = "application/json"
    CASES = [
        (b'{"nickname": "  Mina "}', JSON),
        ('{"nickname": "\ubbfc\uc544 \u2603"}'.encode(), JSON),
        ('{"nickname": "민아"}'.encode(), JSON),
        (b'{"nickname": ""}', JSON),
        (b'{"nickname": "   "}', JSON),
        (b'{"nickname": "' + b"x" * 33 + b'"}', JSON),
        (b'{"nickname": "tab\there"}', JSON),
        (b'{"nickname": 5}', JSON),
        (b'{"nickname": null}', JSON),
        (b'{"x": 1}', JSON),
        (b'{"nickname": "a", "extra": 1}', JSON),
        (b'{"nickname": "a", "nickname": "b"}', JSON),
        (b"{not json", JSON),
        (b"\xff\xfe\x00", JSON),
        (b"[1, 2]", JSON),
        (b"null", JSON),
        (b'{"nickname": NaN}', JSON),
        (b'{"nickname": "a"}', "text/plain"),
        (b'{"nickname": "a"}', "application/json; charset=utf-8"),
        (b'{"nickname": "a"}', "Application/JSON"),
        ('{"nickname": "a"}'.encode("utf-16"), "application/json; charset=utf-16"),
        (b'{"nickname": "a"}', "application/jsonx"),
        (b'{"nickname": "a"}', "application/problem+json"),
        (b'{"nickname": "' + b"a" * 5000 + b'"}', JSON),  # more than the fast path reads
    ]

    @pytest.mark.parametrize(("body", "content_type"), CASES)
    async def test_answers_as_the_route_does(
        self, gateway: GatewayHarness, body: bytes, content_type: str
    ) -> None:
        front = gateway.app.front  # type: ignore[attr-defined]
        fast_creates = front.fast_creates
        headers = {"content-type": content_type}
        fast = await gateway.client.post("/api/auth/guest", content=body, headers=headers)
        front.fast_creates = {}
        try:
            plain = await gateway.client.post("/api/auth/guest", content=body, headers=headers)
        finally:
            front.fast_creates = fast_creates
        assert fast.status_code == plain.status_code, (fast.text, plain.text)
        assert fast.headers["content-type"] == plain.headers["content-type"]
        assert int(fast.headers["content-length"]) == len(fast.content)
        assert _without_ids(fast) == _without_ids(plain)
        if fast.status_code == 201:
            token = fast.json()["access_token"]
            claims = verify_access_token(token, secret=gateway.settings.secret_key)
            assert claims.user_id == fast.json()["user_id"]

    async def test_valid_logins_skip_fastapi_and_their_tokens_are_known(
        self, gateway: GatewayHarness
    ) -> None:
        front = gateway.app.front  # type: ignore[attr-defined]
        inner = front.app
        reached: list[str] = []

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            reached.append(scope["path"])
            await inner(scope, receive, send)

        front.app = counted
        r = await gateway.client.post("/api/auth/guest", json={"nickname": "fast"})
        assert r.status_code == 201
        assert reached == []
        # The gateway keeps the claims of a token it issued: no signature check next time.
        assert front.tokens.verify(r.json()["access_token"]).nickname == "fast"
        # Declined (not a valid body): the route reads the same body and answers.
        r = await gateway.client.post("/api/auth/guest", json={"nickname": ""})
        assert r.status_code == 422
        assert reached == ["/api/auth/guest"]


class TestTokenErrors:
    def _forms(self, gateway: GatewayHarness) -> dict[str, str | None]:
        secret = gateway.settings.secret_key
        now = int(time.time())
        good = {"sub": "u_1", "nick": "n", "typ": "access", "iat": now, "exp": now + 600}
        return {
            "missing": None,
            "empty": "Bearer ",
            "not-bearer": "Basic dXNlcjpwYXNz",
            "malformed": "Bearer not.a.jwt",
            "garbage": "Bearer \u00e9\u00e9",
            "forged-signature": "Bearer "
            + issue_access_token(secret=secret, user_id="u_1", nickname="n", ttl_s=600)[:-4]
            + "AAAA",
            "wrong-key": "Bearer " + jwt.encode(good, "another-secret-key-0123456789abcdef"),
            "expired": "Bearer "
            + issue_access_token(
                secret=secret, user_id="u_1", nickname="n", ttl_s=10, now=time.time() - 3600
            ),
            "alg-none": "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(good) + ".",
            "admission-as-access": "Bearer "
            + issue_admission_token(
                secret=secret, user_id="u_1", session_id=7, queue_position=1, ttl_s=60
            )[0],
        }

    @pytest.mark.parametrize(
        "form",
        [
            "missing",
            "empty",
            "not-bearer",
            "malformed",
            "garbage",
            "forged-signature",
            "wrong-key",
            "expired",
            "alg-none",
            "admission-as-access",
        ],
    )
    async def test_401_with_challenge_and_no_upstream_call(
        self, gateway: GatewayHarness, form: str
    ) -> None:
        route = gateway.ticket.get(MINE).respond(200, json={"items": []})
        value = self._forms(gateway)[form]
        headers = {b"Authorization": value.encode("latin-1")} if value is not None else {}
        r = await gateway.client.get(MINE, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json"
        assert not route.called

    async def test_queue_routes_need_identity(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.get("/api/queue/1")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")

    async def test_public_routes_ignore_a_bad_token(self, gateway: GatewayHarness) -> None:
        gateway.api.get("/api/venues").respond(200, json={})
        r = await gateway.client.get("/api/venues", headers={"Authorization": "Bearer junk"})
        assert r.status_code == 200

    async def test_identity_headers_are_stripped_on_authenticated_routes(
        self, gateway: GatewayHarness
    ) -> None:
        route = gateway.ticket.get(MINE).respond(200, json={"items": []})
        headers = gateway.auth_headers("u_real") | {"X-User-Id": "u_victim", "X-User": "x"}
        await gateway.client.get(MINE, headers=headers)
        sent = route.calls.last.request.headers
        assert "x-user-id" not in sent
        assert "x-user" not in sent


class TestAdmission:
    async def test_valid_token_passes(self, gateway: GatewayHarness) -> None:
        route = gateway.ticket.get(SEATS).respond(200, json={"session_id": 7, "seats": []})
        headers = gateway.auth_headers("u_1") | gateway.admission_headers("u_1", 7)
        r = await gateway.client.get(SEATS, headers=headers)
        assert r.status_code == 200
        assert route.calls.last.request.headers["x-admission-token"]  # forwarded

    @pytest.mark.parametrize("case", ["missing", "other-session", "other-user", "expired", "junk"])
    async def test_bad_admission_is_403(self, gateway: GatewayHarness, case: str) -> None:
        route = gateway.ticket.route("POST", "/api/ticketing/sessions/7/holds").respond(201)
        secret = gateway.settings.secret_key

        def admission(user: str, sid: int, **kw: float) -> str:
            return issue_admission_token(
                secret=secret, user_id=user, session_id=sid, queue_position=1, ttl_s=60, **kw
            )[0]

        tokens = {
            "missing": None,
            "other-session": admission("u_1", 8),
            "other-user": admission("u_2", 7),
            "expired": admission("u_1", 7, now=time.time() - 3600),
            "junk": "abc",
        }
        headers = gateway.auth_headers("u_1")
        if tokens[case] is not None:
            headers["X-Admission-Token"] = tokens[case]  # type: ignore[assignment]
        r = await gateway.client.post(
            "/api/ticketing/sessions/7/holds", json={"seat_ids": [1]}, headers=headers
        )
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"
        assert not route.called

    async def test_reservation_checks_user_not_session(self, gateway: GatewayHarness) -> None:
        route = gateway.ticket.post("/api/ticketing/reservations").respond(201, json={})
        ok = gateway.auth_headers("u_1") | gateway.admission_headers("u_1", 99)
        r = await gateway.client.post(
            "/api/ticketing/reservations",
            json={"hold_id": "h"},
            headers=ok | {"Idempotency-Key": "k1"},
        )
        assert r.status_code == 201
        foreign = gateway.auth_headers("u_2") | gateway.admission_headers("u_1", 99)
        r = await gateway.client.post(
            "/api/ticketing/reservations",
            json={"hold_id": "h"},
            headers=foreign | {"Idempotency-Key": "k2"},
        )
        assert r.status_code == 403
        assert route.call_count == 1

    async def test_routes_without_admission_need_only_auth(self, gateway: GatewayHarness) -> None:
        gateway.ticket.delete("/api/ticketing/holds/h1").respond(204)
        r = await gateway.client.delete(
            "/api/ticketing/holds/h1", headers=gateway.auth_headers("u_1")
        )
        assert r.status_code == 204


class TestCors:
    async def test_preflight_answered_by_gateway(self, gateway_factory) -> None:
        async with gateway_factory(cors_origins=["http://localhost:5173"]) as gw:
            r = await gw.client.options(
                "/api/ticketing/sessions/7/holds",
                headers={
                    "Origin": "http://localhost:5173",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, x-admission-token",
                },
            )
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
            assert "POST" in r.headers["access-control-allow-methods"]
            assert "x-admission-token" in r.headers["access-control-allow-headers"]
            assert not gw.router.calls  # never proxied, no auth needed

    async def test_preflight_from_unknown_origin(self, gateway_factory) -> None:
        async with gateway_factory(cors_origins=["http://localhost:5173"]) as gw:
            r = await gw.client.options(
                "/api/venues",
                headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
            )
            assert r.status_code == 403
            assert "access-control-allow-origin" not in r.headers
            assert not gw.router.calls

    async def test_simple_request_gets_cors_headers(self, gateway_factory) -> None:
        async with gateway_factory(cors_origins=["http://localhost:5173"]) as gw:
            gw.api.get("/api/venues").respond(200, json={})
            r = await gw.client.get("/api/venues", headers={"Origin": "http://localhost:5173"})
            assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
            assert "x-request-id" in r.headers["access-control-expose-headers"]
            # Errors carry them too, or the browser hides the problem from the frontend.
            r = await gw.client.get(MINE, headers={"Origin": "http://localhost:5173"})
            assert r.status_code == 401
            assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
            r = await gw.client.get("/api/venues", headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in r.headers
