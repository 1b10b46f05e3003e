"""Operations routes of ticket_server: health, readiness naming its dependencies, metrics
labelled by route template (not by the ids in the path), and the OpenAPI document."""

from __future__ import annotations

import pytest

from tests.ticket_server.conftest import User
from tests.ticket_server.helpers import book

pytestmark = pytest.mark.integration


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).status_code == 200
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"redis": "ok", "database": "ok"}


async def test_metrics_use_route_templates(client, session):
    u = User.new()
    res = await book(client, u, session.session_id, session.seat_ids[:1])
    await client.get(f"/api/ticketing/reservations/{res['reservation_id']}", headers=u.auth())
    text = (await client.get("/metrics")).text
    assert 'route="/api/ticketing/reservations/{reservation_id}"' in text
    assert res["reservation_id"] not in text


async def test_openapi_documents_the_contract(client):
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    assert set(paths) >= {
        "/api/ticketing/sessions/{session_id}/seats",
        "/api/ticketing/sessions/{session_id}/holds",
        "/api/ticketing/holds/{hold_id}",
        "/api/ticketing/reservations",
        "/api/ticketing/reservations/{reservation_id}",
        "/api/ticketing/me/reservations",
    }
    confirm = paths["/api/ticketing/reservations"]["post"]
    headers = {p["name"] for p in confirm["parameters"] if p["in"] == "header"}
    assert {"Idempotency-Key", "X-Admission-Token"} <= headers
    assert "409" in confirm["responses"]
