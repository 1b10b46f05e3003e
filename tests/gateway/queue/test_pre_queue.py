"""The pre-queue and its draw, through two served gateways on one Redis: the commitment is
public before anyone joins, the seed after opening, the order reproduces from it, the
pre-queue is admitted before everyone who joined after opening, and polling more often
gains nothing."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx

from shared.draw import draw_order
from shared.tokens import new_user_id
from tests.gateway.queue.conftest import mock_sessions, serve_gateway, session_body, user_headers
from tests.gateway.queue.test_api import _claims

pytestmark = pytest.mark.integration

PRE = 21  # pre-queue open, booking opens a few seconds into the test
LATER = 22  # pre-queue opens tomorrow
PLAIN = 23  # no pre-queue, open
OPENS_IN_S = 4.0


def _router(opens_at: datetime) -> tuple[respx.Router, dict[int, dict[str, Any]]]:
    now = datetime.now(UTC)
    bodies: dict[int, dict[str, Any]] = {
        PRE: session_body(PRE, opens_at=opens_at, max_active=2, rate=50),
        LATER: session_body(LATER, opens_at=now + timedelta(days=2), max_active=2, rate=50),
        PLAIN: session_body(PLAIN, opens_at=now - timedelta(hours=1), max_active=2, rate=50),
    }
    bodies[PRE]["queue"]["pre_queue_opens_at"] = (now - timedelta(hours=1)).isoformat()
    bodies[LATER]["queue"]["pre_queue_opens_at"] = (now + timedelta(days=1)).isoformat()
    return mock_sessions(bodies), bodies


async def test_windows_and_the_public_draw_record(redis_url: str, redis_sync: object) -> None:
    router, bodies = _router(datetime.now(UTC) + timedelta(days=2))
    async with serve_gateway(redis_url, router) as gw:
        early = await gw.post(f"/api/queue/{LATER}/join", headers=user_headers())
        assert early.status_code == 409
        # The pre-queue's opening, not booking's.
        pre_opens = datetime.fromisoformat(bodies[LATER]["queue"]["pre_queue_opens_at"])
        assert early.json()["opens_at"] == pre_opens.isoformat()
        assert (await gw.get(f"/api/queue/{LATER}/draw")).json() == {
            "session_id": LATER,
            "commitment": None,
            "seed": None,
            "drawn": 0,
        }
        assert (await gw.get(f"/api/queue/{PLAIN}/draw")).status_code == 404
        assert (await gw.get("/api/queue/999/draw")).status_code == 404
        # PRE's pre-queue is open: the commitment is public at once, the seed is not.
        first = (await gw.get(f"/api/queue/{PRE}/draw")).json()
        assert first["seed"] is None
        assert len(first["commitment"]) == 64
        joined = await gw.post(f"/api/queue/{PRE}/join", headers=user_headers())
        assert joined.status_code == 200
        body = joined.json()
        assert (body["status"], body["position"], body["ahead"]) == ("pre_queue", None, 0)
        assert (await gw.get(f"/api/queue/{PRE}/draw")).json()["commitment"] == (
            first["commitment"]
        )
        # The OpenAPI schema says it all.
        spec = (await gw.get("/openapi.json")).json()
        assert "/api/queue/{session_id}/draw" in spec["paths"]
        status = spec["components"]["schemas"]["QueueStatus"]
        assert "draw_rank" in status["properties"]
        assert "pre_queue" in status["properties"]["status"]["enum"]


@pytest.mark.slow
async def test_the_draw_orders_the_pre_queue_ahead_of_later_joiners(
    redis_url: str, redis_sync: object
) -> None:
    opens_at = datetime.now(UTC) + timedelta(seconds=OPENS_IN_S)
    router, _ = _router(opens_at)
    async with (
        serve_gateway(redis_url, router) as gw_a,
        serve_gateway(redis_url, router) as gw_b,
    ):
        gws = [gw_a, gw_b]
        commitment = (await gw_a.get(f"/api/queue/{PRE}/draw")).json()["commitment"]
        pre_users = [new_user_id() for _ in range(30)]
        heads = {u: user_headers(u) for u in pre_users}
        for i, u in enumerate(pre_users):
            r = await gws[i % 2].post(f"/api/queue/{PRE}/join", headers=heads[u])
            assert r.json()["status"] == "pre_queue", r.text
        leavers = pre_users[3:6]
        for u in leavers:
            assert (await gw_b.delete(f"/api/queue/{PRE}", headers=heads[u])).status_code == 204
        # The last entrant polls ten times as often as anyone until opening; the others
        # not at all: places come from the draw alone.
        eager = pre_users[-1]
        while datetime.now(UTC) < opens_at - timedelta(seconds=0.5):
            for k in range(10):
                r = await gws[k % 2].get(f"/api/queue/{PRE}", headers=heads[eager])
                assert r.json()["status"] == "pre_queue"
            await asyncio.sleep(0.1)
        await asyncio.sleep((opens_at - datetime.now(UTC)).total_seconds())
        post_users = [new_user_id() for _ in range(8)]
        for i, u in enumerate(post_users):
            heads[u] = user_headers(u)
            r = await gws[i % 2].post(f"/api/queue/{PRE}/join", headers=heads[u])
            assert r.json()["status"] == "waiting", r.text
        # The seed is public from opening on: the order to expect is known.
        record = (await gw_b.get(f"/api/queue/{PRE}/draw")).json()
        in_draw = draw_order(bytes.fromhex(record["seed"]), pre_users)
        # Admission: max_active 2; whoever is admitted takes the token and leaves. Whenever
        # someone is seen admitted, everyone ahead of them in that order must be admitted
        # already (they hold the slots, or have left).
        remaining = [u for u in in_draw if u not in leavers] + post_users
        admitted: list[str] = []
        qpos: dict[str, int] = {}
        draw_rank: dict[str, int] = {}
        deadline = time.monotonic() + 30

        async def poll(i: int, u: str, polls: int = 1) -> dict[str, Any]:
            for k in range(polls):
                r = await gws[(i + k) % 2].get(f"/api/queue/{PRE}", headers=heads[u])
            body: dict[str, Any] = r.json()
            if body.get("draw_rank") is not None:
                draw_rank[u] = body["draw_rank"]
            return body

        async def take(i: int, u: str, body: dict[str, Any]) -> None:
            admitted.append(u)
            qpos[u] = _claims(body["admission_token"])["qpos"]
            await gws[i % 2].delete(f"/api/queue/{PRE}", headers=heads[u])

        while len(admitted) < len(remaining) and time.monotonic() < deadline:
            for i, u in enumerate(remaining):
                if u in admitted:
                    continue
                polls = 10 if u == post_users[-1] else 1  # polling 10x more gains nothing
                body = await poll(i, u, polls)
                if body["status"] == "admitted":
                    # Asked of the gateway that saw u admitted: its snapshot is at least that
                    # fresh (the other's may be up to 250 ms older).
                    seen_by = (i + polls - 1) % 2
                    for j, ahead in enumerate(remaining[:i]):
                        if ahead not in admitted:
                            before = await poll(seen_by, ahead)
                            assert before["status"] == "admitted", (ahead, u)
                            await take(j, ahead, before)
                    await take(i, u, body)
            await asyncio.sleep(0.05)
        assert len(admitted) == len(remaining)
        record = (await gw_b.get(f"/api/queue/{PRE}/draw")).json()
    seed = bytes.fromhex(record["seed"])
    assert hashlib.sha256(seed).hexdigest() == commitment == record["commitment"]
    assert record["drawn"] == len(pre_users)
    drawn = draw_order(seed, pre_users)
    expected = [u for u in drawn if u not in leavers] + post_users
    # Line numbers: the draw's rank for the pre-queue, then join order.
    assert sorted(remaining, key=qpos.__getitem__) == expected
    assert {u: drawn.index(u) + 1 for u in draw_rank} == draw_rank
    assert all(qpos[u] == drawn.index(u) + 1 for u in drawn if u not in leavers)
    assert admitted == expected  # admitted in that order
