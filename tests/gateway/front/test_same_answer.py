"""Malformed ``Content-Length``, an oversize body, a bad request id and a bad token get the
same answer on every path through the gateway (issue 18): proxied to an upstream, answered
by the local fast path, answered by a FastAPI route, and (for the body checks) the ops
routes. Each request is a raw ASGI call, so the headers are exactly the ones written here.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from gateway.testing import GatewayHarness
from tests.gateway.asgi import http_scope

LIMIT = 1024 * 1024  # the gateway's default max_body_bytes

# (name, method, path): one route of each kind. The queue routes need a user; the others
# get one too, so that only the thing under test differs.
PROXIED = ("proxied", "POST", "/api/ticketing/orders")
FAST_CREATE = ("fast create", "POST", "/api/auth/guest")
FAST_ROUTE = ("fast route", "GET", "/api/queue/1")
FASTAPI_ROUTE = ("FastAPI route", "DELETE", "/api/queue/1")
OPS = ("ops", "GET", "/healthz")


async def call(
    gateway: GatewayHarness,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
) -> tuple[int, dict[str, str], bytes]:
    """One request straight into the gateway's ASGI app: (status, headers, body)."""
    gateway.ticket.post("/api/ticketing/orders").mock(return_value=httpx.Response(201, json={}))
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks or [b""])
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(path, method, headers)
    await gateway.asgi(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], out, body


def answer(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What must be the same: status, problem document (but the request id), the headers
    that tell the client what to do."""
    problem = orjson.loads(body)
    assert problem.pop("request_id") == headers["x-request-id"]
    return {
        "status": status,
        "content-type": headers.get("content-type"),
        "www-authenticate": headers.get("www-authenticate"),
        "connection": headers.get("connection"),
        "problem": problem,
    }


def bearer(gateway: GatewayHarness) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {gateway.token()}".encode())


CASES: dict[str, tuple[int, list[tuple[str, str, str]]]] = {
    "malformed content-length": (400, [PROXIED, FAST_CREATE, FASTAPI_ROUTE, OPS]),
    "declared length over the limit": (413, [PROXIED, FAST_CREATE, FASTAPI_ROUTE, OPS]),
    "streamed body over the limit": (413, [PROXIED, FAST_CREATE]),
    "bad token": (401, [PROXIED, FAST_ROUTE, FASTAPI_ROUTE]),
}


def request_of(case: str, gateway: GatewayHarness) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    json_ct = (b"content-type", b"application/json")
    if case == "malformed content-length":
        return [bearer(gateway), json_ct, (b"content-length", b"12abc")], [b"{}"]
    if case == "declared length over the limit":
        return [bearer(gateway), json_ct, (b"content-length", str(LIMIT + 1).encode())], [b"{}"]
    if case == "streamed body over the limit":
        chunk = b" " * (256 * 1024)
        return [bearer(gateway), json_ct, (b"transfer-encoding", b"chunked")], [chunk] * 5
    assert case == "bad token"
    return [(b"authorization", b"Bearer not.a.token")], []


@pytest.mark.parametrize("case", sorted(CASES))
async def test_same_answer_on_every_path(gateway: GatewayHarness, case: str) -> None:
    status, paths = CASES[case]
    answers = {}
    for name, method, path in paths:
        headers, chunks = request_of(case, gateway)
        answers[name] = answer(*await call(gateway, method, path, headers, chunks))
    first = next(iter(answers.values()))
    assert first["status"] == status, answers
    assert first["content-type"] == "application/problem+json"
    for name, got in answers.items():
        assert got == first, (name, got, first)
    if status == 401:
        assert first["www-authenticate"] == 'Bearer realm="boxoffice", error="invalid_token"'
    if status == 413:
        assert first["connection"] == "close"


@pytest.mark.parametrize("route", [PROXIED, FAST_CREATE, FAST_ROUTE, FASTAPI_ROUTE, OPS])
@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", ""])
async def test_bad_request_id_is_replaced_on_every_path(
    gateway: GatewayHarness, route: tuple[str, str, str], bad: str
) -> None:
    _, method, path = route
    headers = [bearer(gateway), (b"x-request-id", bad.encode())]
    status, out, body = await call(gateway, method, path, headers, [])
    assert re.fullmatch(r"[0-9a-f]{32}", out["x-request-id"]), (status, out)
    if out.get("content-type") == "application/problem+json":
        assert orjson.loads(body)["request_id"] == out["x-request-id"]
    # A sane one is kept, on the same path.
    headers = [bearer(gateway), (b"x-request-id", b"client.id-1")]
    _, out, _ = await call(gateway, method, path, headers, [])
    assert out["x-request-id"] == "client.id-1"
