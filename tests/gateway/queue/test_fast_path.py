"""The front layer answers join and status itself (``fast_routes`` in gateway/queue/router.py):
it must say exactly what the FastAPI routes say. Each check asks a gateway with the fast path
and one without it (the same Redis, the same user) and compares the answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import orjson
import pytest
import respx

from boxoffice.ports import free_port
from gateway.app import GatewayApp
from tests.gateway.queue.conftest import (
    LATER_SESSION,
    OPEN_SESSION,
    SECRET,
    TIGHT_SESSION,
    serve_gateway,
    user_headers,
)
from tests.gateway.queue.test_api import eventually

pytestmark = pytest.mark.integration


class Calls:
    """Counts the requests that reach the inner FastAPI app."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def install(self, app: GatewayApp) -> None:
        assert app.front is not None
        inner = app.front.app

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            self.paths.append(scope["path"])
            await inner(scope, receive, send)

        app.front.app = counted


def no_fast_path(app: GatewayApp) -> None:
    assert app.front is not None
    app.front.fast_routes = []


@asynccontextmanager
async def pair(
    redis_url: str, router: respx.Router, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Calls]]:
    """(fast, plain, calls): two gateways on one Redis; ``calls`` sees what reaches the
    fast one's FastAPI app."""
    calls = Calls()
    async with (
        serve_gateway(redis_url, router, adjust=calls.install, **overrides) as fast,
        serve_gateway(redis_url, router, adjust=no_fast_path, **overrides) as plain,
    ):
        yield fast, plain, calls


def same(a: httpx.Response, b: httpx.Response) -> None:
    """Same status, content type, Retry-After and body (but for the request id)."""
    assert a.status_code == b.status_code, (a.text, b.text)
    for name in ("content-type", "retry-after", "www-authenticate"):
        assert a.headers.get(name) == b.headers.get(name), name
    assert a.headers["x-request-id"]
    assert int(a.headers["content-length"]) == len(a.content)
    body_a, body_b = orjson.loads(a.content), orjson.loads(b.content)
    if isinstance(body_a, dict) and "request_id" in body_a:
        assert body_a.pop("request_id") == a.headers["x-request-id"]
        body_b.pop("request_id")
    if isinstance(body_a, dict) and body_a.get("admission_token"):
        # Each copy is signed anew with its own random ``jti``; the rest must match.
        body_a["admission_token"], body_b["admission_token"] = (
            {**jwt.decode(body["admission_token"], SECRET, algorithms=["HS256"]), "jti": ""}
            for body in (body_a, body_b)
        )
    waits = [
        body.get("estimated_wait_s") if isinstance(body, dict) else None
        for body in (body_a, body_b)
    ]
    if all(isinstance(w, float | int) for w in waits):
        # Computed from the clock and the measured admission rate at each call.
        assert abs(waits[0] - waits[1]) <= 0.5, waits  # type: ignore[operator]
        body_a.pop("estimated_wait_s"), body_b.pop("estimated_wait_s")
    assert body_a == body_b


class TestFastPathAnswersAsFastAPI:
    async def test_join_and_status_waiting_admitted_and_refusals(
        self, redis_url: str, redis_sync: Any, upstream_mock: respx.Router
    ) -> None:
        async with pair(redis_url, upstream_mock) as (fast, plain, calls):
            users = [user_headers() for _ in range(3)]
            joined = [
                await gw.post(f"/api/queue/{TIGHT_SESSION}/join", headers=me)
                for gw, me in zip((fast, plain, fast), users, strict=True)
            ]
            assert [r.status_code for r in joined] == [200, 200, 200]
            assert {r.headers["content-type"] for r in joined} == {"application/json"}
            assert len({tuple(r.json()) for r in joined}) == 1  # the same fields, in order

            # TIGHT_SESSION has two slots: once the first two are in, nothing changes.
            async def two_admitted() -> bool:
                answers = [
                    await fast.get(f"/api/queue/{TIGHT_SESSION}", headers=me) for me in users
                ]
                return [r.json()["status"] for r in answers] == ["admitted", "admitted", "waiting"]

            await eventually(two_admitted)
            for me in users:
                for path, method in (("", "GET"), ("/join", "POST")):  # status; join again
                    url = f"/api/queue/{TIGHT_SESSION}{path}"
                    same(
                        await fast.request(method, url, headers=me),
                        await plain.request(method, url, headers=me),
                    )

            stranger = user_headers()
            for method, path in (
                ("GET", f"/api/queue/{OPEN_SESSION}"),  # never joined: 404
                ("POST", "/api/queue/999/join"),  # unknown session: 404
                ("POST", f"/api/queue/{LATER_SESSION}/join"),  # not open yet: 409 + opens_at
                ("POST", "/api/queue/0/join"),  # out of range: FastAPI's 422
                ("GET", f"/api/queue/{2**53 + 1}"),
            ):
                a = await fast.request(method, path, headers=stranger)
                b = await plain.request(method, path, headers=stranger)
                same(a, b)
                assert a.status_code in (404, 409, 422)
            conflict = await fast.post(f"/api/queue/{LATER_SESSION}/join", headers=stranger)
            assert conflict.json()["opens_at"]

            # Only what the fast path declines reached FastAPI: the ids out of range.
            assert calls.paths == ["/api/queue/0/join", f"/api/queue/{2**53 + 1}"]

    async def test_redis_down_is_the_same_503(
        self, redis_url: str, redis_sync: Any, upstream_mock: respx.Router
    ) -> None:
        dead = f"redis://127.0.0.1:{free_port()}/0"
        async with pair(dead, upstream_mock, redis_socket_timeout_s=0.3) as (fast, plain, _):
            me = user_headers()
            for method, path in (
                ("POST", f"/api/queue/{OPEN_SESSION}/join"),
                ("GET", f"/api/queue/{OPEN_SESSION}"),
            ):
                a = await fast.request(method, path, headers=me)
                same(a, await plain.request(method, path, headers=me))
                assert a.status_code == 503
                assert a.headers["retry-after"] == "1"

    async def test_identity_and_other_methods_still_apply(
        self, redis_url: str, redis_sync: Any, upstream_mock: respx.Router
    ) -> None:
        async with pair(redis_url, upstream_mock) as (fast, plain, calls):
            same(
                await fast.get(f"/api/queue/{OPEN_SESSION}"),
                await plain.get(f"/api/queue/{OPEN_SESSION}"),
            )
            bad = {"Authorization": "Bearer nope"}
            same(
                await fast.post(f"/api/queue/{OPEN_SESSION}/join", headers=bad),
                await plain.post(f"/api/queue/{OPEN_SESSION}/join", headers=bad),
            )
            me = user_headers()
            await fast.post(f"/api/queue/{OPEN_SESSION}/join", headers=me)
            # Leave (DELETE) and a HEAD of the status are FastAPI's.
            assert (await fast.delete(f"/api/queue/{OPEN_SESSION}", headers=me)).status_code == 204
            head = await fast.head(f"/api/queue/{OPEN_SESSION}", headers=me)
            assert (
                head.status_code
                == (await plain.head(f"/api/queue/{OPEN_SESSION}", headers=me)).status_code
            )
            assert calls.paths == [f"/api/queue/{OPEN_SESSION}"] * 2
