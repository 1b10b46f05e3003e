"""The seat map's pure-ASGI fast path (``ticket_server/inventory/fast.py``) answers exactly as
the FastAPI route does: each request goes to an app with the fast path and to one without."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.ticket_server.conftest import AppFactory, CatalogSession, User
from ticket_server.inventory.fast import SeatMapFastPath

pytestmark = pytest.mark.integration


class Passthrough:
    """Stands in for the fast path: every request goes on to FastAPI."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def same(a: httpx.Response, b: httpx.Response) -> None:
    """Same status, headers that matter, and body (but for the request id)."""
    assert a.status_code == b.status_code, (a.text, b.text)
    for name in ("content-type", "content-encoding", "retry-after", "www-authenticate"):
        assert a.headers.get(name) == b.headers.get(name), name
    body_a, body_b = orjson.loads(a.content), orjson.loads(b.content)
    if "request_id" in body_a:
        assert body_a.pop("request_id") == a.headers["x-request-id"]
        body_b.pop("request_id")
    assert body_a == body_b


async def test_seat_map_answers_match_fastapi(
    make_client: AppFactory,
    session: CatalogSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fallbacks: list[str] = []

    class Counting(SeatMapFastPath):
        def __init__(self, app: Any) -> None:
            async def counted(scope: Any, receive: Any, send: Any) -> None:
                fallbacks.append(scope["path"])
                await app(scope, receive, send)

            super().__init__(counted)

    monkeypatch.setattr("ticket_server.app.SeatMapFastPath", Counting)
    fast = await make_client()
    monkeypatch.setattr("ticket_server.app.SeatMapFastPath", Passthrough)
    plain = await make_client()

    sid = session.session_id
    me, other = User.new(), User.new()
    url = f"/api/ticketing/sessions/{sid}/seats"
    held = await fast.post(
        f"/api/ticketing/sessions/{sid}/holds",
        headers=other.headers(sid),
        json={"seat_ids": session.seat_ids[:2]},
    )
    assert held.status_code == 201
    fallbacks.clear()

    cases: list[tuple[str, dict[str, Any]]] = [
        (url, me.headers(sid)),  # 200, two seats held
        (url, {**me.headers(sid), "Accept-Encoding": "gzip"}),
        (url, {}),  # 401: no token
        (url, {"Authorization": "Bearer nope"}),  # 401: invalid
        (url, {"Authorization": f"Basic {me.token}"}),  # 401: not a bearer token
        (url, me.auth()),  # 403: no admission
        (url, {**me.auth(), "X-Admission-Token": me.admission(sid + 1)}),  # 403: other session
        (url, {**me.auth(), "X-Admission-Token": other.admission(sid)}),  # 403: other user
        (url, {"Authorization": "Bearer a.b.c", "X-Admission-Token": "x" * 8000}),  # 401
        (url, {**me.auth(), "X-Admission-Token": b"\xc3\xa9t\xe9.\xff.\x01"}),  # 403
        (url, {**me.auth(), "X-Admission-Token": "x" * 8000}),  # 403: oversized junk
        ("/api/ticketing/sessions/999999/seats", me.headers(999_999)),  # 404
        ("/api/ticketing/sessions/99999999999999999999/seats", me.headers(sid)),  # 422
        ("/api/ticketing/sessions/abc/seats", me.headers(sid)),  # 422
        ("/api/ticketing/sessions/0/seats", me.headers(sid)),  # 422, FastAPI's
    ]
    for path, headers in cases:
        a, b = await fast.get(path, headers=headers), await plain.get(path, headers=headers)
        same(a, b)
        assert a.status_code in (200, 401, 403, 404, 422)
    first = (await fast.get(url, headers=me.headers(sid))).json()
    assert [s["status"] for s in first["seats"][:3]] == ["held", "held", "available"]
    # Only the id out of range reached FastAPI.
    assert fallbacks == [
        "/api/ticketing/sessions/99999999999999999999/seats",
        "/api/ticketing/sessions/abc/seats",
        "/api/ticketing/sessions/0/seats",
    ]
    # Metrics and access log still name the route template, not the raw path.
    metrics = (await fast.get("/metrics")).text
    assert 'route="/api/ticketing/sessions/{session_id}/seats"' in metrics
    assert f"/sessions/{sid}/seats" not in metrics
