"""The request-scoped plumbing: one transaction per request, the admin check, replica reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from api_server.app import create_app
from api_server.dependencies import SessionDep
from api_server.errors import NotFound
from boxoffice.db import migrate
from shared.db.engine import make_engine
from shared.db.models import Venue
from tests.api_server.conftest import ADMIN, add_catalog, assert_problem, make_settings, serve

pytestmark = pytest.mark.integration


def _venues(engine: Engine) -> list[str]:
    with Session(engine) as db:
        return list(db.scalars(select(Venue.name).order_by(Venue.id)))


def _app_with_probe_routes(database_url: str) -> FastAPI:
    app = create_app(make_settings(database_url))

    @app.post("/probe/{outcome}")
    def probe(db: SessionDep, outcome: str) -> dict[str, int]:
        db.add(Venue(name=f"probe-{outcome}", address="x", seat_count=0))
        db.flush()  # written inside the request's transaction...
        if outcome == "fail":
            raise NotFound("the route failed after writing")  # ...and rolled back
        if outcome == "crash":
            raise RuntimeError("unexpected")
        return {"venues": db.scalar(select(func.count()).select_from(Venue)) or 0}

    return app


async def test_session_commits_on_success_and_rolls_back_on_error(
    clean_db: Engine, database_url: str
) -> None:
    async with serve(_app_with_probe_routes(database_url)) as api:
        assert (await api.post("/probe/ok")).json() == {"venues": 1}
        assert_problem(await api.post("/probe/fail"), 404)
        with pytest.raises(RuntimeError):  # ASGITransport re-raises what the app did not handle
            await api.post("/probe/crash")
    assert _venues(clean_db) == ["probe-ok"]


async def test_empty_configured_admin_token_disables_the_admin_api(
    clean_db: Engine, database_url: str
) -> None:
    async with serve(create_app(make_settings(database_url, admin_token=""))) as api:
        body = {"title": "T", "venue_id": 1}
        resp = await api.post("/api/admin/performances", json=body, headers={"X-Admin-Token": "x"})
        assert_problem(resp, 403)


async def test_reads_go_to_the_replica_and_writes_to_the_primary(
    clean_db: Engine, database_url: str, tmp_path: Path
) -> None:
    replica_url = f"sqlite:///{tmp_path / 'replica.sqlite3'}"
    migrate(replica_url)
    replica = make_engine(replica_url)
    try:
        with Session(replica) as db:
            add_catalog(db, title="Only on the replica")
        settings = make_settings(database_url, read_database_url=replica_url)
        async with serve(create_app(settings)) as api:
            listed = (await api.get("/api/performances")).json()["items"]
            assert [p["title"] for p in listed] == ["Only on the replica"]
            venue = {
                "name": "Written",
                "address": "x",
                "sections": [{"grade": "R", "price": 1, "rows": ["A"], "seats_per_row": 1}],
            }
            assert (
                await api.post("/api/admin/venues", json=venue, headers=ADMIN)
            ).status_code == 201
            assert (await api.get("/readyz")).json()["checks"] == {
                "database": "ok",
                "read_database": "ok",
            }
        assert _venues(clean_db) == ["Written"]
        assert _venues(replica) == ["Hall of Only on the replica"]
    finally:
        replica.dispose()
