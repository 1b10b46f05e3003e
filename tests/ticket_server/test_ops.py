"""Operations routes of ticket_server: health, readiness naming its dependencies, metrics
labelled by route template (not by the ids in the path), and the OpenAPI document."""

from __future__ import annotations

import pytest

from shared import keys
from tests.ticket_server.conftest import User
from tests.ticket_server.helpers import book, hold

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
    assert 'boxoffice_ticket_holds_total{outcome="ok"} 1.0' in text
    assert 'boxoffice_ticket_confirmations_total{outcome="ok"} 1.0' in text
    assert "boxoffice_ticket_seat_map_loads_total 1.0" in text


async def test_booking_outcomes_are_counted(client, session):
    u, other = User.new(), User.new()
    sid = session.session_id
    await book(client, u, sid, session.seat_ids[:1])
    assert (await hold(client, other, sid, session.seat_ids[:2])).status_code == 409
    rid = f"r_{sid}_" + "0" * 32
    await client.delete(f"/api/ticketing/reservations/{rid}", headers=u.auth())
    text = (await client.get("/metrics")).text
    assert 'boxoffice_ticket_holds_total{outcome="conflict"} 1.0' in text
    assert 'boxoffice_ticket_cancellations_total{outcome="not_found"} 1.0' in text


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


async def test_readiness_fails_while_redis_work_fails(client, session, redis_sync):
    """Redis answers PING, but the booking scripts fail (here: the seat map is not a hash):
    /readyz says so, not only a dead Redis."""
    u = User.new()
    sid = session.session_id
    assert (await hold(client, u, sid, session.seat_ids[:1])).status_code == 201
    redis_sync.delete(keys.seats(sid))
    redis_sync.set(keys.seats(sid), "not a hash")
    assert (await hold(client, u, sid, session.seat_ids[1:2])).status_code == 503
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert "redis" in r.json()["failing"]
