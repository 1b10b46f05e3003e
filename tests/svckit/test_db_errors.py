"""A value the database refuses is a client error (422), never "database unavailable": on
the suite's real database (MariaDB raises a failed CHECK as an ``OperationalError``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from api_server.app import create_app
from api_server.dependencies import SessionDep
from shared.db.models import Performance, PerformanceSession
from svckit.db_errors import is_data_error
from tests.api_server.conftest import add_catalog, assert_problem, make_settings, serve
from ticket_server.worker.apply import is_transient

pytestmark = pytest.mark.integration


def _zero_rate_session(performance_id: int) -> dict[str, object]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "performance_id": performance_id,
        "starts_at": now + timedelta(days=2),
        "booking_opens_at": now + timedelta(days=1),
        "queue_max_active": 1,
        # The CHECK refuses it (MariaDB: errno 4025 as an OperationalError; SQLite: an
        # IntegrityError). MariaDB stores 5e-324 as 0.000 and refuses it the same way.
        "queue_admit_per_second": 0,
    }


def _refused_insert(engine: Engine) -> DBAPIError:
    with engine.connect() as conn:
        perf_id = conn.scalar(select(Performance.id).limit(1))
        assert perf_id is not None
        with pytest.raises(DBAPIError) as caught:
            conn.execute(insert(PerformanceSession).values(**_zero_rate_session(perf_id)))
        conn.rollback()
    return caught.value


def test_a_refused_value_is_a_data_error(clean_db: Engine) -> None:
    with Session(clean_db) as db:
        add_catalog(db)
    refused = _refused_insert(clean_db)
    assert is_data_error(refused)
    assert not is_transient(refused)  # the worker isolates such an event, never retries it


def test_a_lost_connection_is_not_a_data_error() -> None:
    lost = OperationalError("SELECT 1", {}, Exception(2013, "Lost connection to server"))
    locked = OperationalError("SELECT 1", {}, Exception("database is locked"))
    assert not is_data_error(lost)
    assert not is_data_error(locked)
    assert not is_data_error(ValueError("not a database error"))


async def test_api_server_answers_422_not_503(clean_db: Engine, database_url: str) -> None:
    with Session(clean_db) as db:
        _, perf, _ = add_catalog(db)
        perf_id = perf.id
    app: FastAPI = create_app(make_settings(database_url))

    @app.post("/probe")
    def probe(db: SessionDep) -> None:
        # Past the schema (which refuses this rate now): what the database itself says.
        db.execute(insert(PerformanceSession).values(**_zero_rate_session(perf_id)))

    async with serve(app) as api:
        problem = assert_problem(await api.post("/probe"), 422)
    assert problem["type"].endswith("/validation-error")
