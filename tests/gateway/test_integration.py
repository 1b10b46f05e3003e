"""Gateway + a real api_server as uvicorn processes on free ports: the demo catalog through
the gateway, and the gateway's behaviour when the api_server dies and comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boxoffice.ports import free_port
from boxoffice.seed import seed_demo
from svckit.http_server import HTTP_PROTOCOL

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def _wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s")


class Service:
    """One uvicorn process of a service factory, restartable on the same port."""

    def __init__(self, factory: str, port: int, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.factory = factory
        self.port = port
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "uvicorn", self.factory, "--factory",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--loop", "asyncio", "--http", HTTP_PROTOCOL, "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=log
            )
        _wait_ready(self.url + "/healthz")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def system(
    database_url: str, redis_url: str, clean_db: object, tmp_path: Path
) -> Iterator[dict[str, Service]]:
    """The demo catalog in the test database, an api_server and a gateway in front of it."""
    settings_env = {
        k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")
    }  # the test's own settings only
    settings_env.update(
        BOXOFFICE_DATABASE_URL=database_url,
        BOXOFFICE_REDIS_URL=redis_url,
        BOXOFFICE_LOG_LEVEL="INFO",  # access logs: the request id must show up in both
    )
    seed_demo(database_url, max_active=10, admit_per_second=5.0)
    api = Service("api_server.app:create_app", free_port(), settings_env, tmp_path / "api.log")
    gateway_env = dict(
        settings_env,
        BOXOFFICE_API_SERVER_URL=api.url,
        BOXOFFICE_TICKET_SERVER_URL=f"http://127.0.0.1:{free_port()}",
        BOXOFFICE_RATE_LIMIT='{"enabled": false}',  # not the subject here
        BOXOFFICE_CIRCUIT_FAILURE_THRESHOLD="3",
        BOXOFFICE_CIRCUIT_COOLDOWN_S="1",
        BOXOFFICE_UPSTREAM_CONNECT_TIMEOUT_S="1",
        BOXOFFICE_UPSTREAM_READ_TIMEOUT_S="3",
    )
    gateway = Service("gateway.app:create_app", free_port(), gateway_env, tmp_path / "gateway.log")
    try:
        api.start()
        gateway.start()
        yield {"api": api, "gateway": gateway}
    finally:
        gateway.stop()
        api.stop()


def test_demo_catalog_through_the_gateway(system: dict[str, Service]) -> None:
    gw, api = system["gateway"].url, system["api"].url
    direct = httpx.get(api + "/api/performances?limit=5")
    r = httpx.get(gw + "/api/performances?limit=5", headers={"X-Request-ID": "it-1"})
    assert r.status_code == 200
    assert r.json() == direct.json()
    assert r.json()["items"]
    assert r.headers["x-request-id"] == "it-1"
    perf = r.json()["items"][0]
    detail = httpx.get(f"{gw}/api/performances/{perf['id']}")
    assert detail.status_code == 200
    assert detail.json()["title"] == perf["title"]
    venue = httpx.get(f"{gw}/api/venues/{detail.json()['venue']['id']}")
    assert venue.status_code == 200
    assert httpx.get(gw + "/api/venues/999999").status_code == 404  # api_server's own 404
    # The request id is in both access logs (log lines are flushed per record).
    for service in (system["gateway"], system["api"]):
        lines = [ln for ln in service.log_path.read_text().splitlines() if '"it-1"' in ln]
        assert lines, f"request id not in {service.factory}'s log"
    ready = httpx.get(gw + "/readyz")
    assert ready.json()["failing"].keys() == {"ticket"}  # no ticket_server in this test


@pytest.mark.slow
def test_api_server_killed_mid_run(system: dict[str, Service]) -> None:
    api, gw = system["api"], system["gateway"]
    url = gw.url + "/api/venues"
    statuses: list[int] = []
    problems: list[dict[str, object]] = []
    slowest = 0.0

    async def hammer(seconds: float) -> None:
        nonlocal slowest
        async with httpx.AsyncClient(timeout=10.0) as client:
            stop = time.monotonic() + seconds
            while time.monotonic() < stop:
                t0 = time.monotonic()
                r = await client.get(url)
                slowest = max(slowest, time.monotonic() - t0)
                statuses.append(r.status_code)
                if r.status_code != 200:
                    assert r.headers["content-type"] == "application/problem+json", r.text
                    problems.append(r.json())
                await asyncio.sleep(0.01)

    # Warm both processes up (first-request costs) so the kill lands on a working system.
    for _ in range(3):
        statuses.append(httpx.get(url, timeout=10.0).status_code)
    assert statuses == [200, 200, 200]

    async def scenario() -> None:
        load = asyncio.gather(*(hammer(4.0) for _ in range(4)))
        # Kill mid-run, no goodbye, once the load is flowing (the machine may be slow).
        deadline = time.monotonic() + 2.0
        while statuses.count(200) < 15 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        api.kill()
        await load

    asyncio.run(scenario())
    assert statuses.count(200) > 3, problems[:3]  # the load ran before the kill
    failures = {s for s in statuses if s != 200}
    assert failures, "the kill should have been noticed"
    assert failures <= {502, 503}, statuses
    assert slowest < 2.0  # answered quickly, never hung

    # The circuit is open now; it must close by itself once the api_server is back.
    api.start()
    deadline = time.monotonic() + 10
    recovered = False
    while time.monotonic() < deadline:
        r = httpx.get(url, timeout=5.0)
        assert r.status_code in (200, 502, 503)
        if r.status_code == 200:
            recovered = True
            break
        time.sleep(0.2)
    assert recovered
