"""Operations routes, the error envelope of the framework's own errors, and OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from api_server.app import create_app
from boxoffice.ports import free_port
from tests.api_server.conftest import ADMIN, assert_problem, make_settings, serve


def _closed_port_url() -> str:
    # Nothing listens there: connecting fails at once, no MySQL server needed.
    return f"mysql+pymysql://root@127.0.0.1:{free_port()}/nothing"


@pytest.mark.integration
async def test_healthz_and_readyz(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    resp = await api.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"database": "ok"}


async def test_readyz_names_the_database_when_it_is_down() -> None:
    async with serve(create_app(make_settings(_closed_port_url()))) as api:
        assert (await api.get("/healthz")).status_code == 200  # alive, just not ready
        body = assert_problem(await api.get("/readyz"), 503)
        assert "database" in body["detail"]
        assert set(body["failing"]) == {"database"}


@pytest.mark.integration
async def test_a_down_replica_is_named_and_reads_fall_back_to_the_primary(
    database_url: str,
) -> None:
    settings = make_settings(database_url, read_database_url=_closed_port_url())
    async with serve(create_app(settings)) as api:
        resp = await api.get("/readyz")
        assert resp.status_code == 200  # reads are served: from the primary
        note = resp.json()["checks"]["read_database"]
        assert note.startswith("replica unreachable")
        assert note.endswith("reads use the primary")
        assert (await api.get("/api/venues")).status_code == 200
        metrics = (await api.get("/metrics")).text
        assert "boxoffice_db_replica_up 0.0" in metrics
        assert "boxoffice_db_reads_on_primary 1.0" in metrics
        assert 'boxoffice_db_reads_total{target="primary"} 1.0' in metrics


@pytest.mark.integration
async def test_without_fallback_readyz_names_the_down_replica(database_url: str) -> None:
    settings = make_settings(
        database_url, read_database_url=_closed_port_url(), read_replica_max_lag_s=0
    )
    async with serve(create_app(settings)) as api:
        body = assert_problem(await api.get("/readyz"), 503)
        assert set(body["failing"]) == {"read_database"}
        assert body["failing"]["read_database"] == "ReplicaUnavailable"
        # Reads go to the replica: a 503 the client may retry, not a 500.
        resp = await api.get("/api/venues")
        assert_problem(resp, 503)
        assert resp.headers["retry-after"] == "1"


async def test_database_down_is_503_not_500() -> None:
    async with serve(create_app(make_settings(_closed_port_url()))) as api:
        assert_problem(await api.get("/api/performances"), 503)
        resp = await api.post(
            "/api/admin/performances", json={"title": "T", "venue_id": 1}, headers=ADMIN
        )
        assert_problem(resp, 503)


@pytest.mark.integration
class TestFrameworkErrors:
    async def test_unknown_route_is_404(self, api: httpx.AsyncClient) -> None:
        assert_problem(await api.get("/api/nothing-here"), 404)
        assert_problem(await api.get("/"), 404)

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("DELETE", "/api/venues/1"),
            ("PUT", "/api/performances"),
            ("POST", "/api/sessions/1"),
            ("GET", "/api/admin/venues"),
        ],
    )
    async def test_wrong_method_is_405(
        self, api: httpx.AsyncClient, method: str, path: str
    ) -> None:
        resp = await api.request(method, path, headers=ADMIN)
        assert_problem(resp, 405)
        assert resp.headers["allow"]

    async def test_request_id_is_echoed_when_sane(self, api: httpx.AsyncClient) -> None:
        resp = await api.get("/api/venues/0", headers={"X-Request-ID": "abc.DEF-123_x"})
        assert assert_problem(resp, 422)["request_id"] == "abc.DEF-123_x"
        resp = await api.get("/api/venues", headers={"X-Request-ID": "bad id!"})
        assert resp.headers["x-request-id"] != "bad id!"


@pytest.mark.integration
async def test_openapi_documents_every_route(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("get", "/api/venues"),
        ("get", "/api/venues/{venue_id}"),
        ("get", "/api/performances"),
        ("get", "/api/performances/{performance_id}"),
        ("get", "/api/sessions/{session_id}"),
        ("get", "/api/sessions/{session_id}/rankings"),
        ("get", "/api/stats/sessions/{session_id}"),
        ("post", "/api/admin/venues"),
        ("post", "/api/admin/performances"),
        ("post", "/api/admin/performances/{performance_id}/sessions"),
    }
    found = {(m, p) for p, ops in paths.items() for m in ops if p.startswith("/api/")}
    assert found == expected
    for method, path in expected:
        op = paths[path][method]
        assert op.get("description"), (method, path)
        assert "422" in op["responses"], (method, path)
        problem = op["responses"]["422"]["content"]
        assert "application/problem+json" in problem, (method, path)
        if "{" in path:
            assert "404" in op["responses"], (method, path)
        if path.startswith("/api/admin"):
            assert {"401", "403", "201"} <= set(op["responses"]), (method, path)
    admin_schemes = spec["components"]["securitySchemes"]
    assert any(s.get("name") == "X-Admin-Token" for s in admin_schemes.values())
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)
