"""The waiting room survives Redis losing its data (a restart without persistence, a
failover to a stale replica, a flush): the admission loop creates its consumer group again
on ``NOGROUP`` instead of remembering it forever, so new joiners are admitted and
completed reservations free their slots. On a private ``redis-server`` that is flushed."""

from __future__ import annotations

import time

import pytest
import respx

from shared import keys
from shared.tokens import new_user_id
from tests.fixtures.redis_server import RedisProcess
from tests.gateway.queue.conftest import TIGHT_SESSION, push_completed, serve_gateway, user_headers
from tests.gateway.queue.test_api import status_of, wait_admitted

pytestmark = pytest.mark.integration


async def test_admission_and_releases_go_on_after_a_flush(upstream_mock: respx.Router) -> None:
    with RedisProcess() as server, server.client() as admin:
        async with serve_gateway(server.url, upstream_mock) as gw:
            sid = TIGHT_SESSION  # two slots
            before = [new_user_id() for _ in range(2)]
            for u in before:
                await gw.post(f"/api/queue/{sid}/join", headers=user_headers(u))
            await wait_admitted(gw, sid, user_headers(before[1]))
            assert admin.xinfo_groups(keys.events_stream(sid))  # the loop made its group

            admin.flushall()
            started = time.monotonic()
            x, y, z = (new_user_id() for _ in range(3))
            for u in (x, y, z):
                r = await gw.post(f"/api/queue/{sid}/join", headers=user_headers(u))
                assert r.status_code == 200, r.text
            await wait_admitted(gw, sid, user_headers(y))
            assert time.monotonic() - started < 5
            assert (await status_of(gw, sid, user_headers(z)))["status"] == "waiting"

            # x books: the event frees x's slot for z, through the group made again.
            push_completed(admin, sid, x)
            await wait_admitted(gw, sid, user_headers(z))
            (group,) = admin.xinfo_groups(keys.events_stream(sid))
            assert group["name"] == keys.GATEWAY_QUEUE_GROUP
            assert group["pending"] == 0
