"""Each stage of the front layer on its own (``gateway/front/``): given a request context,
what it sets or which ``AppError`` it raises. The whole pipeline is tested through the app
(tests/gateway/test_proxy.py, test_same_answer.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.datastructures import State

from gateway.config import Settings, default_routes
from gateway.fastpath import FastCreate, FastRoute
from gateway.front.admit import admit
from gateway.front.authenticate import authenticate
from gateway.front.body import check_length
from gateway.front.context import Cors, RequestContext
from gateway.front.forward import forwarded_headers
from gateway.front.rate_limit import enforce, failed, subject
from gateway.front.route import route
from gateway.routes import RouteTable
from shared.ids import MAX_ID
from shared.tokens import issue_access_token, issue_admission_token
from shared.verified_tokens import VerifiedTokens
from svckit.middleware import LimitedBody
from svckit.problems import AppError

ANYWHERE = State({"client_address": lambda scope: "x"})
SECRET = "stage-test-secret-0123456789abcdef0123456789"


def ctx_of(method: str = "GET", path: str = "/api/venues", **headers: str) -> RequestContext:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return RequestContext(
        {"type": "http", "method": method, "path": path, "headers": raw, "client": ("1.2.3.4", 1)}
    )


def routed(method: str, path: str, **headers: str) -> RequestContext:
    ctx = ctx_of(method, path, **headers)
    route(ctx, RouteTable(default_routes()))
    return ctx


def refused(stage: Any, *args: Any) -> AppError:
    with pytest.raises(AppError) as e:
        stage(*args)
    return e.value


class TestContext:
    def test_reads_what_the_stages_need_and_sets_the_request_id(self) -> None:
        ctx = ctx_of(x_request_id="abc.1", content_length="3", authorization="Bearer t")
        assert (ctx.request_id, ctx.content_length, ctx.authorization) == (
            "abc.1",
            b"3",
            b"Bearer t",
        )
        assert ctx.scope["state"]["request_id"] == "abc.1"
        assert len(ctx_of(x_request_id="bad id").request_id) == 32

    def test_cors_only_for_allowed_origins(self) -> None:
        cors = Cors(["https://ok.example"])
        ctx = ctx_of(origin="https://ok.example")
        cors.apply(ctx)
        assert (b"access-control-allow-origin", b"https://ok.example") in ctx.headers
        other = ctx_of(origin="https://evil.example")
        cors.apply(other)
        assert other.headers == []

    async def test_preflight_from_an_unknown_origin_is_403(self) -> None:
        ctx = ctx_of("OPTIONS", origin="https://evil.example", access_control_request_method="GET")
        assert Cors.is_preflight(ctx)
        with pytest.raises(AppError) as e:
            await Cors(["https://ok.example"]).preflight(ctx, _unused_send)
        assert (e.value.status, e.value.slug) == (403, "cors-origin")


async def _unused_send(message: Any) -> None:
    raise AssertionError("nothing is sent")


class TestRoute:
    def test_sets_the_match_and_group(self) -> None:
        ctx = routed("GET", "/api/ticketing/sessions/7/seats")
        assert ctx.match is not None
        assert ctx.match.session_id == 7
        assert ctx.group == "ticketing-read"

    @pytest.mark.parametrize(
        ("path", "status", "slug"),
        [("/api/%2e%2e/x", 400, "bad-path"), ("/api//x", 400, "bad-path"), ("/nope/", 404, None)],
    )
    def test_refuses(self, path: str, status: int, slug: str | None) -> None:
        e = refused(routed, "GET", path)
        assert e.status == status
        assert slug is None or e.slug == slug

    def test_two_authorization_headers_are_400(self) -> None:
        ctx = ctx_of("GET", "/api/venues")
        ctx.scope["headers"] += [(b"authorization", b"a"), (b"authorization", b"b")]
        e = refused(route, RequestContext(ctx.scope), RouteTable(default_routes()))
        assert (e.status, e.slug) == (400, "duplicate-header")


class TestBodyLimit:
    @pytest.mark.parametrize(
        ("value", "status"), [("x", 400), ("-1", 400), ("1_0", 400), (" 1", 400), ("11", 413)]
    )
    def test_refuses_a_bad_or_large_declared_length(self, value: str, status: int) -> None:
        assert refused(check_length, ctx_of(content_length=value), 10).status == status

    def test_length_or_chunked(self) -> None:
        ctx = ctx_of(content_length="10")
        check_length(ctx, 10)
        assert ctx.length == 10
        chunked = ctx_of(transfer_encoding="chunked")
        check_length(chunked, 10)
        assert chunked.length == -1

    async def test_limited_body_answers_413_and_the_app_sees_a_disconnect(self) -> None:
        sent: list[Any] = []
        messages = [{"type": "http.request", "body": b"x" * 8, "more_body": True}] * 2

        async def receive() -> Any:
            return messages.pop(0)

        async def send(message: Any) -> None:
            sent.append(message)

        body = LimitedBody(receive, send, limit=10, request_id="r", headers=[])
        assert (await body.receive())["type"] == "http.request"
        assert (await body.receive())["type"] == "http.disconnect"
        await body.send({"type": "http.response.start", "status": 200, "headers": []})
        assert body.status == 413
        assert [m.get("status") for m in sent][0] == 413


class TestAuthenticate:
    def token(self) -> str:
        return issue_access_token(secret=SECRET, user_id="u1", nickname="n", ttl_s=60)

    def test_sets_the_user(self) -> None:
        ctx = routed("GET", "/api/queue/1", authorization=f"Bearer {self.token()}")
        authenticate(ctx, VerifiedTokens(SECRET))
        assert ctx.user is not None
        assert ctx.user.user_id == "u1"
        assert ctx.scope["state"]["user"] is ctx.user

    @pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic abc"])
    def test_401_where_the_route_needs_a_user(self, authorization: str | None) -> None:
        headers = {"authorization": authorization} if authorization else {}
        e = refused(authenticate, routed("GET", "/api/queue/1", **headers), VerifiedTokens(SECRET))
        assert e.status == 401
        assert ('error="invalid_token"' in e.headers["WWW-Authenticate"]) == bool(authorization)

    def test_a_bad_token_is_ignored_where_none_is_needed(self) -> None:
        ctx = routed("GET", "/api/venues", authorization="Bearer nope")
        authenticate(ctx, VerifiedTokens(SECRET))
        assert ctx.user is None


@dataclass
class Decision:
    allowed: bool
    status: int = 429
    retry_after: int = 3
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: [(b"ratelimit-limit", b"5")])


class Limiter:
    def __init__(self, decision: Decision | None) -> None:
        self.decision = decision
        self.hits: list[tuple[str, str]] = []

    async def hit(self, group: str, subject: str) -> Decision:
        self.hits.append((group, subject))
        if self.decision is None:
            raise RuntimeError("limiter bug")
        return self.decision


async def limited(ctx: RequestContext, limiter: Limiter, state: State) -> None:
    """The rate-limit stage as the pipeline runs it."""
    try:
        decision = await limiter.hit(ctx.group, subject(ctx, state))
    except Exception as e:
        raise failed(ctx) from e
    enforce(ctx, decision)


class TestRateLimit:
    async def test_keys_anonymous_requests_by_address(self) -> None:
        ctx = routed("GET", "/api/venues")
        limiter = Limiter(Decision(True))
        await limited(ctx, limiter, State({"client_address": lambda scope: "9.9.9.9"}))
        assert limiter.hits == [("browse", "ip:9.9.9.9")]
        assert ctx.headers == [(b"ratelimit-limit", b"5")]

    @pytest.mark.parametrize(("decision", "status"), [(Decision(False), 429), (None, 503)])
    async def test_refuses(self, decision: Decision | None, status: int) -> None:
        with pytest.raises(AppError) as e:
            await limited(routed("GET", "/api/venues"), Limiter(decision), ANYWHERE)
        assert e.value.status == status
        assert "Retry-After" in e.value.headers

    async def test_fails_closed_with_the_decisions_status(self) -> None:
        with pytest.raises(AppError) as e:
            await limited(
                routed("GET", "/api/venues"), Limiter(Decision(False, status=503)), ANYWHERE
            )
        assert (e.value.status, e.value.headers["Retry-After"]) == (503, "3")


class TestAdmit:
    def ctx(self, **headers: str) -> RequestContext:
        ctx = routed("GET", "/api/ticketing/sessions/7/seats", **headers)
        token = issue_access_token(secret=SECRET, user_id="u1", nickname="n", ttl_s=60)
        ctx.authorization = f"Bearer {token}".encode()
        authenticate(ctx, VerifiedTokens(SECRET))
        return ctx

    def admission(self, session_id: int) -> str:
        token, _ = issue_admission_token(
            secret=SECRET, user_id="u1", session_id=session_id, queue_position=1, ttl_s=60
        )
        return token

    def test_admits_with_a_token_for_this_session(self) -> None:
        admit(self.ctx(x_admission_token=self.admission(7)), SECRET)

    @pytest.mark.parametrize(
        ("token", "slug"), [(None, "admission-required"), ("other", "admission-invalid")]
    )
    def test_refuses(self, token: str | None, slug: str) -> None:
        headers = {"x_admission_token": self.admission(8)} if token else {}
        e = refused(admit, self.ctx(**headers), SECRET)
        assert (e.status, e.slug) == (403, slug)


class TestForward:
    def test_drops_identity_and_hop_by_hop_headers_and_sets_forwarding(self) -> None:
        ctx = ctx_of(host="h.example", x_user_id="admin", connection="keep-alive, x-secret")
        ctx.scope["headers"].append((b"x-secret", b"1"))
        names = dict(forwarded_headers(RequestContext(ctx.scope)))
        assert b"x-user-id" not in names
        assert b"x-secret" not in names
        assert b"host" not in names
        assert names[b"x-forwarded-for"] == b"1.2.3.4"
        assert names[b"x-forwarded-host"] == b"h.example"


class TestFastPath:
    async def handler(self, state: Any, session_id: int, user: Any) -> bytes:
        return b"{}"

    def test_a_fast_route_is_compiled_from_its_template_within_the_id_bound(self) -> None:
        fast = FastRoute("GET", "/api/queue/{session_id}", self.handler)
        assert fast.session_id("GET", b"/api/queue/42") == 42
        assert fast.session_id("POST", b"/api/queue/42") is None
        assert fast.session_id("GET", str(f"/api/queue/{MAX_ID}").encode()) == MAX_ID
        assert fast.session_id("GET", str(f"/api/queue/{MAX_ID + 1}").encode()) is None
        assert fast.session_id("GET", b"/api/queue/0") is None
        assert fast.session_id("GET", b"/api/queue/1/x") is None

    def test_templates_must_fit_the_kind(self) -> None:
        with pytest.raises(ValueError, match="one id"):
            FastRoute("GET", "/api/queue", self.handler)
        with pytest.raises(ValueError, match="no ids"):
            FastCreate("/api/x/{session_id}", lambda state, body: None)
        assert FastCreate("/api/auth/guest", lambda state, body: None).path == b"/api/auth/guest"

    def test_settings_routes_are_the_defaults(self) -> None:
        assert Settings(secret_key=SECRET).routes == default_routes()


def test_every_fast_path_is_a_documented_route() -> None:
    """A fast route or fast create has a FastAPI route of the same method and template: it
    is in the OpenAPI document, and answers what the fast path declines."""
    from gateway.app import create_app

    app = create_app(Settings(secret_key=SECRET, log_level="WARNING"))
    assert app.front is not None
    paths = app.openapi()["paths"]
    declared = [(f.method, f.template) for f in app.front.fast_routes]
    declared += [("POST", f.template) for f in app.front.fast_creates.values()]
    assert len(declared) >= 3
    for method, template in declared:
        assert method.lower() in paths.get(template, {}), (method, template)
