"""``boxoffice serve`` as production runs it: it refuses public or short secrets, and only
``BOXOFFICE_TRUSTED_PROXIES`` may vouch for a forwarded client address."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from boxoffice.ports import free_port
from shared.config import DEV_ADMIN_TOKEN, DEV_SECRET_KEY
from tests.fixtures.services import SERVE_SECRETS, boxoffice_serve, clean_environment

# The guest-login policy (gateway/ratelimit/policies.py, "auth"): a burst of 20, then 5/s.
AUTH_BURST, AUTH_RATE = 20, 5.0
STRONG = SERVE_SECRETS["BOXOFFICE_SECRET_KEY"]


def _serve_api(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``boxoffice serve api`` that is expected to exit by itself (the old code served on
    until the timeout killed it, which fails the test)."""
    argv = [sys.executable, "-m", "boxoffice.cli", "serve", "api", "--port", str(free_port())]
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, ["BOXOFFICE_SECRET_KEY", "BOXOFFICE_ADMIN_TOKEN"]),
        ({"BOXOFFICE_SECRET_KEY": DEV_SECRET_KEY, "BOXOFFICE_ADMIN_TOKEN": STRONG}, ["SECRET"]),
        ({"BOXOFFICE_SECRET_KEY": STRONG, "BOXOFFICE_ADMIN_TOKEN": DEV_ADMIN_TOKEN}, ["ADMIN"]),
        ({"BOXOFFICE_SECRET_KEY": "short-0123456789", "BOXOFFICE_ADMIN_TOKEN": STRONG}, ["SECRET"]),
        ({"BOXOFFICE_SECRET_KEY": STRONG, "BOXOFFICE_ADMIN_TOKEN": "x" * 31}, ["ADMIN"]),
    ],
)
def test_serve_refuses_default_or_short_secrets(
    tmp_path: Path, settings: dict[str, str], named: list[str]
) -> None:
    env = clean_environment(
        BOXOFFICE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", **settings
    )
    run = _serve_api(env, tmp_path)
    assert run.returncode == 2, run.stderr
    assert "refusing to start" in run.stderr
    for word in named:
        assert word in run.stderr
    assert "BOXOFFICE_ALLOW_INSECURE_DEFAULTS" in run.stderr


@pytest.mark.slow
def test_serve_starts_on_defaults_only_when_told_to(tmp_path: Path) -> None:
    env = clean_environment(
        BOXOFFICE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        BOXOFFICE_ALLOW_INSECURE_DEFAULTS="true",
    )
    with boxoffice_serve("api", env, tmp_path / "api.log") as url:
        assert httpx.get(url + "/healthz").status_code == 200


async def _guest_logins(url: str, forwarded: list[str | None]) -> tuple[list[int], float]:
    """One guest login per entry, all at once; (statuses, seconds the batch took)."""
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:

        async def login(i: int, xff: str | None) -> int:
            headers = {"X-Forwarded-For": xff} if xff else {}
            r = await client.post("/api/auth/guest", json={"nickname": f"n{i}"}, headers=headers)
            return r.status_code

        started = time.monotonic()
        statuses = await asyncio.gather(*(login(i, x) for i, x in enumerate(forwarded)))
        return list(statuses), time.monotonic() - started


def _gateway_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_environment(
        BOXOFFICE_REDIS_URL=redis_url,
        BOXOFFICE_DATA_DIR=str(tmp_path),
        BOXOFFICE_LOG_LEVEL="WARNING",
        **SERVE_SECRETS,
        **extra,
    )


@pytest.mark.slow
@pytest.mark.integration
def test_a_forwarded_address_from_loopback_is_not_believed_by_default(
    redis_url: str, redis_sync: redis.Redis, tmp_path: Path
) -> None:
    env = _gateway_env(redis_url, tmp_path)
    with boxoffice_serve("gateway", env, tmp_path / "gateway.log") as url:
        # Thirty people from 127.0.0.1, each claiming another address.
        rotating = [f"203.0.113.{i + 1}" for i in range(30)]
        statuses, took = asyncio.run(_guest_logins(url, list[str | None](rotating)))
    assert set(statuses) <= {201, 429}, statuses
    admitted = statuses.count(201)
    # One bucket (the socket's address): at most the burst plus what the rate refilled.
    assert admitted <= AUTH_BURST + AUTH_RATE * took + 1, (statuses, took)
    assert statuses.count(429) >= 1, (statuses, took)


@pytest.mark.slow
@pytest.mark.integration
def test_a_trusted_proxy_still_vouches_for_forwarded_addresses(
    redis_url: str, redis_sync: redis.Redis, tmp_path: Path
) -> None:
    env = _gateway_env(redis_url, tmp_path, BOXOFFICE_TRUSTED_PROXIES="127.0.0.1/32")
    with boxoffice_serve("gateway", env, tmp_path / "gateway.log") as url:
        rotating = [f"203.0.113.{i + 1}" for i in range(30)]
        statuses, _ = asyncio.run(_guest_logins(url, list[str | None](rotating)))
        # The same address over its burst is refused: the header is the key, not ignored.
        again, _ = asyncio.run(_guest_logins(url, ["198.51.100.7"] * 30))
    assert statuses == [201] * 30
    assert again.count(429) >= 1
