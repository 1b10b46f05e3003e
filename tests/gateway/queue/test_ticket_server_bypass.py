"""An admission from the queue works at ticket_server directly (no gateway in between), and
nothing else does: none, forged, expired, another session's, another user's → 403."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import Engine

from gateway.queue.schemas import QueuePolicy
from gateway.queue.service import QueueService
from shared.tokens import issue_access_token, issue_admission_token, new_user_id
from tests.ticket_server.conftest import SECRET, _WithState, create_session, make_settings
from ticket_server.app import create_app

pytestmark = pytest.mark.integration


async def test_ticket_server_takes_only_a_real_admission_of_this_user_and_session(
    clean_db: Engine, database_url: str, redis_url: str, redis_client: aioredis.Redis
) -> None:
    session = create_session(clean_db, seats=4)
    sid = session.session_id
    queue = QueueService(
        redis=redis_client, secret=SECRET, heartbeat_timeout_s=30, admission_ttl_s=600
    )
    user, other = new_user_id(), new_user_id()
    for u in (user, other):
        await queue.join(session_id=sid, user_id=u)
    policy = QueuePolicy(max_active=10, admit_per_second=1000)
    await queue.tick(session_id=sid, policy=policy)
    view = await queue.status(session_id=sid, user_id=user)
    token = queue.render(view, session_id=sid, user_id=user, policy=policy).admission_token
    assert token

    def access(u: str) -> dict[str, str]:
        t = issue_access_token(secret=SECRET, user_id=u, nickname="n", ttl_s=600)
        return {"Authorization": f"Bearer {t}"}

    def admission(**kw: Any) -> str:
        args: dict[str, Any] = {
            "secret": SECRET,
            "user_id": user,
            "session_id": sid,
            "queue_position": 1,
            "ttl_s": 600,
        } | kw
        return issue_admission_token(**args)[0]

    app = create_app(make_settings(database_url, redis_url=redis_url))
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=_WithState(app, state or {}))
        async with httpx.AsyncClient(transport=transport, base_url="http://ticket") as client:
            path = f"/api/ticketing/sessions/{sid}/seats"
            ok = await client.get(path, headers={**access(user), "X-Admission-Token": token})
            assert ok.status_code == 200, ok.text
            refused: dict[str, tuple[str, str | None]] = {
                "none": (user, None),
                "forged": (user, admission(secret="another-secret-0123456789abcdef-long")),
                "expired": (user, admission(ttl_s=1, now=time.time() - 3600)),
                "other session": (user, admission(session_id=sid + 1)),
                "other user's": (other, token),
            }
            for name, (who, value) in refused.items():
                headers = access(who)
                if value is not None:
                    headers["X-Admission-Token"] = value
                r = await client.get(path, headers=headers)
                assert r.status_code == 403, (name, r.status_code, r.text)
