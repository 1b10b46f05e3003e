"""The queue's HTTP contract through real gateway instances (uvicorn in-process on free
ports, sharing the test Redis; api_server and ticket_server mocked with respx)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
import redis

from boxoffice.ports import free_port
from shared import keys
from shared.tokens import issue_access_token, issue_admission_token, new_user_id
from tests.gateway.queue.conftest import (
    LATER_SESSION,
    OPEN_SESSION,
    SECRET,
    TIGHT_SESSION,
    GatewayFactory,
    push_completed,
    user_headers,
)

# Run on standalone Redis and on a cluster (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.redis_backends]


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def status_of(client: httpx.AsyncClient, sid: int, headers: dict[str, str]) -> Any:
    r = await client.get(f"/api/queue/{sid}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def wait_admitted(client: httpx.AsyncClient, sid: int, headers: dict[str, str]) -> Any:
    async def admitted() -> Any:
        body = await status_of(client, sid, headers)
        return body if body["status"] == "admitted" else None

    return await eventually(admitted)


class TestContract:
    async def test_join_is_idempotent_then_admitted_then_leave(
        self, gateway: GatewayFactory
    ) -> None:
        async with gateway() as gw:
            me = user_headers()
            first = await gw.post(f"/api/queue/{OPEN_SESSION}/join", headers=me)
            assert first.status_code == 200, first.text
            assert first.json()["session_id"] == OPEN_SESSION
            assert first.json()["status"] in ("waiting", "admitted")
            body = await wait_admitted(gw, OPEN_SESSION, me)
            assert body["position"] is None
            assert body["admission_token"]
            assert body["admission_expires_at"].endswith("+00:00") or body[
                "admission_expires_at"
            ].endswith("Z")
            again = await gw.post(f"/api/queue/{OPEN_SESSION}/join", headers=me)
            assert again.json()["status"] == "admitted"  # joining again keeps the place
            left = await gw.delete(f"/api/queue/{OPEN_SESSION}", headers=me)
            assert left.status_code == 204
            gone = await gw.get(f"/api/queue/{OPEN_SESSION}", headers=me)
            assert gone.status_code == 404
            assert gone.headers["content-type"] == "application/problem+json"

    async def test_refusals(self, gateway: GatewayFactory) -> None:
        async with gateway() as gw:
            me = user_headers()
            r = await gw.post("/api/queue/999/join", headers=me)
            assert r.status_code == 404
            r = await gw.post(f"/api/queue/{LATER_SESSION}/join", headers=me)
            assert r.status_code == 409
            assert r.json()["opens_at"].startswith("20")
            r = await gw.get(f"/api/queue/{OPEN_SESSION}", headers=me)
            assert r.status_code == 404  # never joined
            r = await gw.get(f"/api/queue/{OPEN_SESSION}/events", headers=me)
            assert r.status_code == 404
            r = await gw.post(f"/api/queue/{OPEN_SESSION}/join")
            assert r.status_code == 401
            r = await gw.post("/api/queue/0/join", headers=me)
            assert r.status_code in (404, 422)
            r = await gw.post("/api/queue/abc/join", headers=me)
            assert r.status_code in (404, 422)
            forged = issue_access_token(
                secret="x" * 40, user_id=new_user_id(), nickname="n", ttl_s=60
            )
            r = await gw.post(
                f"/api/queue/{OPEN_SESSION}/join", headers={"Authorization": f"Bearer {forged}"}
            )
            assert r.status_code == 401

    async def test_metrics_name_the_session(self, gateway: GatewayFactory) -> None:
        async with gateway() as gw:
            me = user_headers()
            await gw.post(f"/api/queue/{OPEN_SESSION}/join", headers=me)
            await wait_admitted(gw, OPEN_SESSION, me)
            text = (await gw.get("/metrics")).text
            assert f'boxoffice_queue_admissions_total{{session="{OPEN_SESSION}"}}' in text
            assert f'boxoffice_queue_admitted{{session="{OPEN_SESSION}"}}' in text


class TestSharedByInstances:
    async def test_two_gateways_admit_in_join_order_within_max_active(
        self, gateway: GatewayFactory, redis_sync: redis.Redis
    ) -> None:
        async with gateway() as a, gateway() as b:
            users = [user_headers() for _ in range(12)]
            for i, h in enumerate(users):  # joined in this order, alternating instances
                r = await (a if i % 2 else b).post(f"/api/queue/{TIGHT_SESSION}/join", headers=h)
                assert r.status_code == 200
            admitted_positions: list[int] = []
            remaining = list(users)
            q = keys.queue_key
            while remaining:
                await asyncio.sleep(0.05)
                # An atomic snapshot: nobody admitted may be behind anyone still waiting.
                pipe = redis_sync.pipeline(transaction=True)
                pipe.scard(q(TIGHT_SESSION, "active"))
                pipe.zrange(q(TIGHT_SESSION, "wait"), 0, 0, withscores=True)
                pipe.hvals(q(TIGHT_SESSION, "gpos"))
                active, head, granted = pipe.execute()
                assert active <= 2  # TIGHT_SESSION: max_active 2
                if head:
                    assert all(int(g.split(":")[0]) < head[0][1] for g in granted)
                for h in list(remaining):
                    body = await status_of(a, TIGHT_SESSION, h)
                    if body["status"] == "admitted":
                        admitted_positions.append(_claims(body["admission_token"])["qpos"])
                        remaining.remove(h)
                        await b.delete(f"/api/queue/{TIGHT_SESSION}", headers=h)
            assert sorted(admitted_positions) == list(range(1, 13))

    async def test_reservation_completed_event_frees_the_slot(
        self, gateway: GatewayFactory, redis_sync: redis.Redis
    ) -> None:
        async with gateway() as a, gateway() as b:
            u1, u2, u3 = (new_user_id() for _ in range(3))
            for u in (u1, u2, u3):
                await a.post(f"/api/queue/{TIGHT_SESSION}/join", headers=user_headers(u))
            await wait_admitted(b, TIGHT_SESSION, user_headers(u2))
            assert (await status_of(b, TIGHT_SESSION, user_headers(u3)))["status"] == "waiting"
            push_completed(redis_sync, TIGHT_SESSION, u1)
            await wait_admitted(a, TIGHT_SESSION, user_headers(u3))
            # u1 keeps a valid admission (its token lives until it expires).
            assert (await status_of(a, TIGHT_SESSION, user_headers(u1)))["status"] == "admitted"
            group = redis_sync.xinfo_groups(keys.events_stream(TIGHT_SESSION))
            assert group[0]["pending"] == 0  # acknowledged


class TestEvents:
    async def test_sse_pushes_admission_and_sold_out(
        self, gateway: GatewayFactory, redis_sync: redis.Redis
    ) -> None:
        async with gateway(queue_heartbeat_timeout_s=3) as gw:
            first, second, me = user_headers(), user_headers(), user_headers()
            for h in (first, second, me):
                await gw.post(f"/api/queue/{TIGHT_SESSION}/join", headers=h)
            await wait_admitted(gw, TIGHT_SESSION, second)
            seen: list[dict[str, Any]] = []
            async with gw.stream("GET", f"/api/queue/{TIGHT_SESSION}/events", headers=me) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.aiter_lines()

                async def next_status() -> dict[str, Any]:
                    async for line in lines:
                        if line.startswith("data:"):
                            body: dict[str, Any] = orjson.loads(line[5:])
                            seen.append(body)
                            return body
                    raise AssertionError("stream ended")

                body = await asyncio.wait_for(next_status(), 5)
                assert (body["status"], body["position"]) == ("waiting", 1)
                await gw.delete(f"/api/queue/{TIGHT_SESSION}", headers=first)
                body = await asyncio.wait_for(next_status(), 5)
                assert body["status"] == "admitted"
                assert body["admission_token"]
            # A waiter behind: sold out reaches it at once, without polling.
            late = user_headers()
            await gw.post(f"/api/queue/{TIGHT_SESSION}/join", headers=late)
            async with gw.stream(
                "GET", f"/api/queue/{TIGHT_SESSION}/events", headers=late
            ) as stream:
                lines = stream.aiter_lines()
                assert (await asyncio.wait_for(next_status(), 5))["status"] == "waiting"
                t0 = time.monotonic()
                redis_sync.set(keys.sold_out_flag(TIGHT_SESSION), "1")
                assert (await asyncio.wait_for(next_status(), 5))["status"] == "sold_out"
                assert time.monotonic() - t0 < 1.0

    async def test_moves_up_the_line_are_held_to_one_a_second_and_an_admission_is_not(
        self, gateway: GatewayFactory
    ) -> None:
        """In a busy on-sale the line moves on every tick; each move sent to every stream
        was most of the gateway's work. Moves reach a stream at most once a second, the
        latest one included; an admission goes out at once."""
        async with gateway(queue_heartbeat_timeout_s=30) as gw:
            blockers = [user_headers(), user_headers()]
            ahead = [user_headers() for _ in range(3)]
            me = user_headers()
            for h in (*blockers, *ahead, me):
                await gw.post(f"/api/queue/{TIGHT_SESSION}/join", headers=h)
            await wait_admitted(gw, TIGHT_SESSION, blockers[1])
            got: list[tuple[float, dict[str, Any]]] = []
            async with gw.stream("GET", f"/api/queue/{TIGHT_SESSION}/events", headers=me) as st:

                async def read_all() -> None:
                    async for line in st.aiter_lines():
                        if line.startswith("data:"):
                            got.append((time.monotonic(), orjson.loads(line[5:])))

                reader = asyncio.create_task(read_all())
                await eventually(lambda: asyncio.sleep(0, bool(got)))
                assert got[0][1]["position"] == 4
                opened = got[0][0]
                for h in ahead:  # three moves within a few ticks
                    await gw.delete(f"/api/queue/{TIGHT_SESSION}", headers=h)
                    await asyncio.sleep(0.12)
                await eventually(lambda: asyncio.sleep(0, got[-1][1]["position"] == 1), 3)
                moves = [(t, b["position"]) for t, b in got[1:]]
                assert moves[0][0] - opened >= 0.9, moves  # held after the first status
                assert len(moves) <= 2, moves  # 3 moves, coalesced
                sent_last = got[-1][0]
                await gw.delete(f"/api/queue/{TIGHT_SESSION}", headers=blockers[0])
                await eventually(lambda: asyncio.sleep(0, got[-1][1]["status"] == "admitted"), 3)
                assert got[-1][0] - sent_last < 0.9  # not held: a second had not passed
                reader.cancel()

    async def test_leaving_ends_the_stream_with_a_gone_event(self, gateway: GatewayFactory) -> None:
        async with gateway() as gw:
            blockers = [user_headers(), user_headers()]
            me = user_headers()
            for h in (*blockers, me):
                await gw.post(f"/api/queue/{TIGHT_SESSION}/join", headers=h)
            async with gw.stream("GET", f"/api/queue/{TIGHT_SESSION}/events", headers=me) as st:
                events: list[str] = []

                async def read_all() -> None:
                    async for line in st.aiter_lines():
                        if line.startswith("event:"):
                            events.append(line.split(":", 1)[1].strip())

                reader = asyncio.create_task(read_all())
                # The first status; the first tick's admissions may bring another.
                await eventually(lambda: asyncio.sleep(0, events[:1] == ["status"]))
                await gw.delete(f"/api/queue/{TIGHT_SESSION}", headers=me)
                await asyncio.wait_for(reader, 5)  # the server ends the stream
            assert events[-1] == "gone"
            assert set(events[:-1]) == {"status"}

    async def test_silent_waiter_expires_and_an_open_stream_is_a_heartbeat(
        self, gateway: GatewayFactory
    ) -> None:
        async with gateway(queue_heartbeat_timeout_s=1) as gw:
            blockers = [user_headers(), user_headers()]
            silent, streaming = user_headers(), user_headers()
            for h in (*blockers, silent, streaming):
                await gw.post(f"/api/queue/{TIGHT_SESSION}/join", headers=h)
            async with gw.stream(
                "GET", f"/api/queue/{TIGHT_SESSION}/events", headers=streaming
            ) as stream:
                assert stream.status_code == 200

                async def keep_blockers() -> None:
                    for _ in range(8):
                        for h in blockers:
                            await gw.get(f"/api/queue/{TIGHT_SESSION}", headers=h)
                        await asyncio.sleep(0.25)

                await keep_blockers()
                body = await status_of(gw, TIGHT_SESSION, streaming)
                assert body["status"] == "waiting"
                assert body["position"] == 1  # the silent one ahead dropped out
            assert (await status_of(gw, TIGHT_SESSION, silent))["status"] == "expired"


class TestFailClosed:
    async def test_redis_down_is_503_never_admission(self, gateway: GatewayFactory) -> None:
        dead = f"redis://127.0.0.1:{free_port()}/0"
        async with gateway(redis_url=dead, redis_socket_timeout_s=0.3) as gw:
            me = user_headers()
            for r in (
                await gw.post(f"/api/queue/{OPEN_SESSION}/join", headers=me),
                await gw.get(f"/api/queue/{OPEN_SESSION}", headers=me),
                await gw.delete(f"/api/queue/{OPEN_SESSION}", headers=me),
            ):
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == "application/problem+json"
                assert "admission_token" not in r.text


class TestBypassThroughGateway:
    async def test_ticketing_needs_a_valid_admission_of_this_user_and_session(
        self, gateway: GatewayFactory
    ) -> None:
        async with gateway() as gw:
            user = new_user_id()
            me = user_headers(user)
            await gw.post(f"/api/queue/{OPEN_SESSION}/join", headers=me)
            token = (await wait_admitted(gw, OPEN_SESSION, me))["admission_token"]
            path = f"/api/ticketing/sessions/{OPEN_SESSION}/seats"

            def admission(**kw: Any) -> str:
                args: dict[str, Any] = {
                    "secret": SECRET,
                    "user_id": user,
                    "session_id": OPEN_SESSION,
                    "queue_position": 1,
                    "ttl_s": 600,
                } | kw
                return issue_admission_token(**args)[0]

            refused = {
                "none": None,
                "garbage": "not-a-token",
                "forged": admission(secret="another-secret-0123456789abcdef-long"),
                "expired": admission(ttl_s=1, now=time.time() - 3600),
                "other session": admission(session_id=TIGHT_SESSION),
                "other user": admission(user_id=new_user_id()),
                "someone else's real one": token,
            }
            for name, value in refused.items():
                headers = dict(me) if name != "someone else's real one" else user_headers()
                if value is not None:
                    headers["X-Admission-Token"] = value
                r = await gw.get(path, headers=headers)
                assert r.status_code == 403, (name, r.status_code, r.text)
            ok = await gw.get(path, headers={**me, "X-Admission-Token": token})
            assert ok.status_code == 200


def _claims(token: str) -> dict[str, Any]:
    import jwt

    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"])
    return claims
