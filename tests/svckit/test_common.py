"""The plumbing every service shares: request ids, body limit, problem+json, ops routes."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from svckit.app import install_common
from svckit.errors import Conflict
from svckit.middleware import sane_request_id


class Body(BaseModel):
    n: int = Field(ge=0, le=10)


def _app(ready: bool = True) -> FastAPI:
    app = FastAPI()

    async def check(_: Request) -> None:
        if not ready:
            raise ConnectionError("refused")

    install_common(app, service="t", checks={"thing": check}, max_body_bytes=1000)

    @app.post("/echo")
    async def echo(body: Body) -> dict[str, int]:
        return {"n": body.n}

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("taken", conflicting_seat_ids=[1, 2])

    @app.get("/big")
    async def big() -> dict[str, list[int]]:
        return {"n": [7] * 2000}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


class TestRequestId:
    async def test_sane_id_is_echoed(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/healthz", headers={"X-Request-ID": "abc.DEF_1-2"})
        assert r.headers["x-request-id"] == "abc.DEF_1-2"

    @pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "<script>", "é"])
    async def test_insane_id_is_replaced(self, client: httpx.AsyncClient, bad: str) -> None:
        r = await client.get("/healthz", headers={b"X-Request-ID": bad.encode("utf-8")})
        rid = r.headers["x-request-id"]
        assert rid != bad
        assert 1 <= len(rid) <= 128

    async def test_missing_id_is_generated(self, client: httpx.AsyncClient) -> None:
        r1 = await client.get("/healthz")
        r2 = await client.get("/healthz")
        assert r1.headers["x-request-id"] != r2.headers["x-request-id"]


class TestCompression:
    async def test_large_answers_are_gzipped_for_clients_that_accept_it(
        self, client: httpx.AsyncClient
    ) -> None:
        plain = await client.get("/big", headers={"Accept-Encoding": "identity"})
        zipped = await client.get("/big", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in plain.headers
        assert zipped.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in zipped.headers["vary"].lower()
        assert int(zipped.headers["content-length"]) * 3 < len(plain.content)
        assert zipped.json() == plain.json() == {"n": [7] * 2000}
        assert zipped.headers["x-request-id"]

    async def test_small_answers_are_not(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/conflict", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in r.headers


class TestProblems:
    async def test_app_error_has_extras(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/conflict", headers={"X-Request-ID": "rid1"})
        assert r.status_code == 409
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["conflicting_seat_ids"] == [1, 2]
        assert body["request_id"] == "rid1"
        assert body["status"] == 409

    @pytest.mark.parametrize(
        "content",
        [b"{not json", b"\xff\xfe\x00", b'{"n": "x"}', b'{"n": 11}', b"[]", b""],
    )
    async def test_bad_bodies_are_422(self, client: httpx.AsyncClient, content: bytes) -> None:
        r = await client.post(
            "/echo", content=content, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"]

    async def test_oversized_body_is_413(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/echo", content=b"1" * 2000)
        assert r.status_code == 413
        assert r.json()["status"] == 413

    async def test_oversized_chunked_body_is_413(self, client: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"1" * 400

        r = await client.post("/echo", content=chunks())
        assert r.status_code == 413

    @pytest.mark.parametrize(("length", "status"), [(b"12abc", 400), (b"-1", 400), (b"2000", 413)])
    async def test_bad_or_too_large_declared_length_is_refused_before_the_app(
        self, length: bytes, status: int
    ) -> None:
        # Raw ASGI: an HTTP client would not send a Content-Length that is not a number.
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": b"1", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/echo",
            "raw_path": b"/echo",
            "query_string": b"",
            "headers": [(b"content-length", length)],
        }
        await _app()(scope, receive, send)
        assert sent[0]["status"] == status
        assert b"x-request-id" in dict(sent[0]["headers"])
        body = orjson.loads(sent[1]["body"])
        assert body["status"] == status
        assert body["type"].endswith("bad-request" if status == 400 else "payload-too-large")

    async def test_unknown_route_and_method(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/nope")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        r = await client.delete("/echo")
        assert r.status_code == 405
        assert r.json()["title"] == "Method Not Allowed"

    async def test_bug_is_a_500_problem_without_trace(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/boom", headers={"X-Request-ID": "rid2"})
        assert r.status_code == 500
        assert "RuntimeError" not in r.text
        assert r.json()["request_id"] == "rid2"
        assert r.headers["x-request-id"] == "rid2"


class TestOps:
    async def test_ready_and_not_ready(self) -> None:
        for ready, status in ((True, 200), (False, 503)):
            transport = httpx.ASGITransport(app=_app(ready))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                r = await c.get("/readyz")
            assert r.status_code == status
            if not ready:
                assert "thing" in r.json()["failing"]

    async def test_a_check_may_answer_ready_with_a_note(self) -> None:
        app = FastAPI()

        async def degraded(_: Request) -> str:
            return "replica down; reads use the primary"

        async def fine(_: Request) -> None:
            return None

        install_common(app, service="t", checks={"reads": degraded, "db": fine})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/readyz")
        assert r.status_code == 200
        assert r.json()["checks"] == {"reads": "replica down; reads use the primary", "db": "ok"}

    async def test_metrics_count_requests(self, client: httpx.AsyncClient) -> None:
        await client.get("/healthz")
        text = (await client.get("/metrics")).text
        assert 'boxoffice_http_requests_total{method="GET",route="/healthz"' in text


def test_new_request_ids_are_128_random_bits_in_hex_and_differ_across_forks() -> None:
    ids = {sane_request_id(None) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert sane_request_id(b"client-given.id_1") == "client-given.id_1"
    assert sane_request_id(b"bad id with spaces") not in ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id must not repeat the parent's
        os.write(write, sane_request_id(None).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != sane_request_id(None)
