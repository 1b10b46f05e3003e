"""Small request helpers shared by the ticket_server tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.ticket_server.conftest import User


async def hold(
    client: httpx.AsyncClient, user: User, session_id: int, seat_ids: list[Any]
) -> httpx.Response:
    """POST a hold."""
    return await client.post(
        f"/api/ticketing/sessions/{session_id}/holds",
        headers=user.headers(session_id),
        json={"seat_ids": seat_ids},
    )


async def reserve(
    client: httpx.AsyncClient,
    user: User,
    session_id: int,
    hold_id: str,
    key: str | None = None,
) -> httpx.Response:
    """POST a reservation of a hold (a fresh Idempotency-Key unless one is given)."""
    return await client.post(
        "/api/ticketing/reservations",
        headers=user.headers(session_id, **{"Idempotency-Key": key or uuid.uuid4().hex}),
        json={"hold_id": hold_id},
    )


async def book(client: httpx.AsyncClient, user: User, session_id: int, seat_ids: list[int]) -> Any:
    """Hold and confirm; the reservation body."""
    r = await hold(client, user, session_id, seat_ids)
    assert r.status_code == 201, r.text
    r = await reserve(client, user, session_id, r.json()["hold_id"])
    assert r.status_code == 201, r.text
    return r.json()


async def statuses(client: httpx.AsyncClient, user: User, session_id: int) -> dict[int, str]:
    """``seat_id -> status`` from the live seat map."""
    r = await client.get(
        f"/api/ticketing/sessions/{session_id}/seats", headers=user.headers(session_id)
    )
    assert r.status_code == 200, r.text
    return {s["seat_id"]: s["status"] for s in r.json()["seats"]}


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The response is a problem+json with ``status``; its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


async def aio_post(
    http: Any, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, Any]:
    """POST JSON with an aiohttp session (the races over real HTTP); status and body."""
    async with http.post(url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def aio_hold(
    http: Any, base: str, user: User, session_id: int, seat_ids: list[int]
) -> tuple[int, Any]:
    """POST a hold through aiohttp."""
    url = f"{base}/api/ticketing/sessions/{session_id}/holds"
    return await aio_post(http, url, {"seat_ids": seat_ids}, user.headers(session_id))


async def aio_confirm(
    http: Any, base: str, user: User, session_id: int, hold_id: str, key: str
) -> tuple[int, Any]:
    """POST a reservation (confirm a hold) through aiohttp, with its Idempotency-Key."""
    headers = {**user.headers(session_id), "Idempotency-Key": key}
    return await aio_post(http, f"{base}/api/ticketing/reservations", {"hold_id": hold_id}, headers)
