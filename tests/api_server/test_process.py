"""api_server as ``make run`` starts it: ``boxoffice serve api`` in its own process
(uvicorn factory, httptools) over a migrated, seeded SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from boxoffice.db import migrate
from boxoffice.ports import free_port
from boxoffice.seed import seed_demo
from tests.fixtures.services import SERVE_SECRETS

pytestmark = pytest.mark.slow


def test_serve_api_answers_the_demo_catalog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    migrate(url)
    seed_demo(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env["BOXOFFICE_DATABASE_URL"] = url
    env.update(SERVE_SECRETS)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "boxoffice.cli", "serve", "api", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = httpx.get(base + "/api/performances", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "api_server did not start within 30 s"
                time.sleep(0.2)
        assert resp.status_code == 200
        titles = [p["title"] for p in resp.json()["items"]]
        assert "Aurora Live in Seoul" in titles
        assert httpx.get(base + "/readyz", timeout=5).json()["checks"] == {"database": "ok"}
        missing = httpx.get(base + "/api/sessions/999999", timeout=5)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert proc.wait(10) in (0, -signal.SIGTERM), log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
