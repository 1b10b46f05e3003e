"""No internal address reaches a client: a path with a stray trailing slash, through a real
gateway in front of a real api_server and ticket_server (``boxoffice serve`` each), is a 404
problem, never a redirect to the backend's own address; and a failing readiness check names
the kind of failure, not the upstream's address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine

from boxoffice.ports import free_port
from boxoffice.seed import seed_demo
from tests.fixtures.services import SERVE_SECRETS, boxoffice_serve, clean_environment

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def stack(
    database_url: str,
    redis_url: str,
    clean_db: Engine,
    redis_sync: redis.Redis,
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """Base URLs of a gateway, api_server and ticket_server serving the demo catalog."""
    seed_demo(database_url)
    env = clean_environment(
        BOXOFFICE_DATABASE_URL=database_url,
        BOXOFFICE_REDIS_URL=redis_url,
        BOXOFFICE_DATA_DIR=str(tmp_path),
        BOXOFFICE_LOG_LEVEL="WARNING",
        BOXOFFICE_RATE_LIMIT='{"enabled": false}',  # not the subject here
        **SERVE_SECRETS,
    )
    with (
        boxoffice_serve("api", env, tmp_path / "api.log") as api,
        boxoffice_serve("ticket", env, tmp_path / "ticket.log") as ticket,
    ):
        gateway_env = dict(env, BOXOFFICE_API_SERVER_URL=api, BOXOFFICE_TICKET_SERVER_URL=ticket)
        with boxoffice_serve("gateway", gateway_env, tmp_path / "gateway.log") as gateway:
            yield {"gateway": gateway, "api": api, "ticket": ticket}


STRAY_SLASHES = [
    ("GET", "/api/venues/"),
    ("GET", "/api/performances/"),
    ("GET", "/api/venues/1/"),
    ("GET", "/api/sessions/1/rankings/"),
    ("GET", "/api/stats/sessions/1/"),
    ("POST", "/api/admin/venues/"),
    ("POST", "/api/ticketing/sessions/1/holds/"),
    ("GET", "/api/ticketing/sessions/1/seats/"),
    ("GET", "/api/ticketing/me/reservations/"),
    ("POST", "/api/ticketing/reservations/"),
    ("DELETE", "/api/ticketing/holds/h1/"),
    ("POST", "/api/auth/guest/"),
    ("GET", "/api/queue/1/"),
    ("GET", "/healthz/"),
]


def test_a_stray_trailing_slash_is_a_404_with_no_internal_address(
    stack: dict[str, str],
) -> None:
    internal = [stack["api"], stack["ticket"]]
    internal += [url.removeprefix("http://") for url in internal]  # in Host-like form too
    with httpx.Client(base_url=stack["gateway"], timeout=10.0) as client:
        token = client.post("/api/auth/guest", json={"nickname": "slash"}).json()["access_token"]
        auth = {
            "Authorization": f"Bearer {token}",
            "X-Admin-Token": SERVE_SECRETS["BOXOFFICE_ADMIN_TOKEN"],
        }
        assert client.get("/api/venues").status_code == 200  # the stack serves
        for method, path in STRAY_SLASHES:
            for headers in ({}, auth):
                r = client.request(method, path, headers=headers, json={"seat_ids": [1]})
                where = f"{method} {path} {sorted(headers)}"
                assert not 300 <= r.status_code < 400, (where, r.status_code, r.headers)
                assert "location" not in r.headers, where
                for name, value in r.headers.items():
                    assert not any(a in value for a in internal), (where, name, value)
                assert not any(a in r.text for a in internal), (where, r.text)
                assert r.status_code < 500, (where, r.status_code, r.text)
                assert r.headers["content-type"].startswith("application/problem+json"), where
        # The same paths without the slash still reach the backends.
        assert client.get("/api/venues/1").status_code in (200, 404)
        assert client.get("/api/performances").status_code == 200


def test_readiness_names_no_internal_address(
    redis_url: str, redis_sync: redis.Redis, tmp_path: Path
) -> None:
    # Upstreams that refuse the connection: the transport's error names their address.
    api, ticket = free_port(), free_port()
    env = clean_environment(
        BOXOFFICE_REDIS_URL=redis_url,
        BOXOFFICE_DATA_DIR=str(tmp_path),
        BOXOFFICE_LOG_LEVEL="WARNING",
        BOXOFFICE_API_SERVER_URL=f"http://127.0.0.1:{api}",
        BOXOFFICE_TICKET_SERVER_URL=f"http://127.0.0.1:{ticket}",
        **SERVE_SECRETS,
    )
    with boxoffice_serve("gateway", env, tmp_path / "gateway.log") as gateway:
        r = httpx.get(gateway + "/readyz", timeout=10.0)
    assert r.status_code == 503
    assert set(r.json()["failing"]) == {"api", "ticket"}
    exposed = r.text + "".join(f"{k}: {v}" for k, v in r.headers.items())
    for port in (api, ticket):
        assert str(port) not in exposed, exposed
    assert "127.0.0.1" not in exposed, exposed
    # The operator still finds the reason in the log.
    assert str(api) in (tmp_path / "gateway.log").read_text()
