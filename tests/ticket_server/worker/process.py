"""Running the worker as a real process (``boxoffice worker``) for the process-level tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from boxoffice.ports import free_port

ROOT = Path(__file__).resolve().parents[3]


class WorkerProcess:
    """``python -m boxoffice.cli worker -- ...`` with its own metrics port and log file."""

    def __init__(
        self, *, database_url: str, redis_url: str, log_dir: Path, **env: str | int | float
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.extra_env = {f"BOXOFFICE_WORKER_{k.upper()}": str(v) for k, v in env.items()}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    def start(self, *args: str) -> None:
        """Start a fresh process (a new pid, so a new consumer name)."""
        self.port = free_port()
        self.starts += 1
        env = dict(os.environ)
        env |= {
            "BOXOFFICE_DATABASE_URL": self.database_url,
            "BOXOFFICE_REDIS_URL": self.redis_url,
            "BOXOFFICE_LOG_LEVEL": "INFO",
        } | self.extra_env
        log = (self.log_dir / f"worker-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "boxoffice.cli",
                "worker",
                "--",  # the CLI passes what follows to the worker's own parser
                "--metrics-port",
                str(self.port),
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_http()

    @property
    def url(self) -> str:
        """Base URL of the ops endpoint."""
        return f"http://127.0.0.1:{self.port}"

    def wait_http(self, timeout_s: float = 15.0) -> None:
        """Wait until ``/healthz`` answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("worker did not come up: " + self.log())

    def get(self, path: str) -> httpx.Response:
        """GET a path of the ops endpoint."""
        return httpx.get(self.url + path, timeout=5)

    def metric(self, name: str) -> float:
        """Sum of the samples of one metric (all labels) from ``/metrics``."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self) -> None:
        """SIGKILL: no cleanup, no acknowledgement, pending entries left behind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def log(self) -> str:
        """The current process's output (for assertion messages)."""
        path = self.log_dir / f"worker-{self.starts}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def ensure_stopped(self) -> None:
        """Kill the process if a test left it running."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
