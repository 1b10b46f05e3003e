"""The system under test: a running one (``--url``) or one started here from the dev
supervisor's pieces: embedded Valkey / SQLite unless URLs are configured, migrations, then
api_server, ticket_server, N gateways and the worker as ``boxoffice`` subprocesses on free
ports, each logging to a file in the report folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from boxoffice.db import migrate
from boxoffice.dev import start_embedded_redis, stop_processes
from boxoffice.dev_secrets import admin_token_for, secret_key_for, with_install_secrets
from boxoffice.ports import free_port
from boxoffice.services import SERVICES, WORKER_MODULE
from shared.config import CommonSettings


@dataclass(frozen=True)
class Target:
    """Where the simulated crowd goes, and what the verifier may look at."""

    gateway_urls: list[str]
    admin_token: str
    secret_key: str
    redis_url: str | None
    heartbeat_timeout_s: float


class MissingService(RuntimeError):
    """A piece of the system is not in this checkout yet."""


def missing_pieces() -> list[str]:
    """Services (and the worker) this checkout does not have yet."""
    import importlib.util

    missing = [name for name, spec in SERVICES.items() if not spec.exists()]
    try:
        if importlib.util.find_spec(WORKER_MODULE) is None:
            missing.append("worker")
    except ModuleNotFoundError:
        missing.append("worker")
    return missing


def remote_target(
    urls: list[str], settings: CommonSettings, *, redis_url: str | None, admin_token: str | None
) -> Target:
    """A system somebody else runs (e.g. ``make run`` on :8000)."""
    return Target(
        gateway_urls=[u.rstrip("/") for u in urls],
        # `make run`'s secrets are its install's (under the data directory).
        admin_token=admin_token or admin_token_for(settings),
        secret_key=secret_key_for(settings),
        redis_url=redis_url or settings.redis_url,
        heartbeat_timeout_s=float(settings.queue_heartbeat_timeout_s),
    )


class LocalSystem:
    """Starts the whole system on this machine; ``stop()`` ends everything it started."""

    def __init__(
        self,
        *,
        gateways: int,
        log_dir: Path,
        admin_token: str | None = None,
        micro_cache_s: float = 0.0,
        redis_cluster: bool = False,
    ) -> None:
        self.gateways = gateways
        self.redis_cluster = redis_cluster
        self.micro_cache_s = micro_cache_s
        self.log_dir = log_dir
        self.admin_token = admin_token
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._embedded: list[Any] = []
        self._logs: list[IO[bytes]] = []

    def start(self, *, ready_timeout_s: float = 60.0) -> Target:
        """Migrate, start every process, wait until each one is ready."""
        missing = missing_pieces()
        if missing:
            raise MissingService("this checkout lacks: " + ", ".join(missing))
        settings = CommonSettings()
        env = dict(os.environ)
        scratch = Path(tempfile.mkdtemp(prefix="bx-sim-"))
        # Served processes refuse the public default secrets: this run makes its own.
        with_install_secrets(env, settings, scratch)
        if not settings.database_url:
            env["BOXOFFICE_DATABASE_URL"] = f"sqlite:///{scratch / 'boxoffice.sqlite3'}"
        if self.redis_cluster:
            from boxoffice.local_cluster import LocalCluster

            cluster = LocalCluster()
            self._embedded.append(cluster)  # stopped with the rest, even if start fails
            cluster.start()
            env["BOXOFFICE_REDIS_URL"] = cluster.url
        elif not settings.redis_url:
            server = start_embedded_redis(scratch)
            self._embedded.append(server)
            env["BOXOFFICE_REDIS_URL"] = server.connection_url + "/0"
        # Every simulated person comes from this machine: trust our own X-Forwarded-For so
        # each person gets an address of their own (per-address limits such as guest logins
        # would otherwise throttle the whole crowd as one client).
        env.setdefault("BOXOFFICE_TRUSTED_PROXIES", "127.0.0.1/32")
        if self.micro_cache_s > 0:
            env["BOXOFFICE_MICRO_CACHE_TTL_S"] = json.dumps({"browse": self.micro_cache_s})
        migrate(env["BOXOFFICE_DATABASE_URL"])
        api_port, ticket_port = free_port(), free_port()
        env["BOXOFFICE_API_SERVER_URL"] = f"http://127.0.0.1:{api_port}"
        env["BOXOFFICE_TICKET_SERVER_URL"] = f"http://127.0.0.1:{ticket_port}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ready: list[str] = []
        self._spawn("api", ["serve", "api", "--port", str(api_port)], env)
        ready.append(env["BOXOFFICE_API_SERVER_URL"])
        self._spawn("ticket", ["serve", "ticket", "--port", str(ticket_port)], env)
        ready.append(env["BOXOFFICE_TICKET_SERVER_URL"])
        gateway_urls = []
        for i in range(self.gateways):
            port = free_port()
            self._spawn(f"gateway{i + 1}", ["serve", "gateway", "--port", str(port)], env)
            gateway_urls.append(f"http://127.0.0.1:{port}")
        self._spawn("worker", ["worker"], env)
        self._wait_ready(ready + gateway_urls, ready_timeout_s)
        return Target(
            gateway_urls=gateway_urls,
            admin_token=self.admin_token or env.get("BOXOFFICE_ADMIN_TOKEN", settings.admin_token),
            secret_key=env.get("BOXOFFICE_SECRET_KEY", settings.secret_key),
            redis_url=env["BOXOFFICE_REDIS_URL"],
            heartbeat_timeout_s=float(settings.queue_heartbeat_timeout_s),
        )

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "boxoffice.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the children only through us
        )
        self.procs.append((name, proc))

    def _wait_ready(self, urls: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(urls)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                self.check_alive()
                url = pending[0]
                try:
                    if client.get(url + "/readyz").status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{url} not ready after {timeout_s:.0f}s (see {self.log_dir})"
                    )
                time.sleep(0.2)

    def check_alive(self) -> None:
        """Raise if a process died (its log is in the report folder)."""
        for name, proc in self.procs:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(f"{name} exited with {code}; see {self.log_dir / name}.log")

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after a grace period) and embedded server."""
        stop_processes(self.procs)
        self.procs.clear()
        for server in self._embedded:
            server.stop()
        self._embedded.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
