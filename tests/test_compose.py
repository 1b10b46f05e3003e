"""docker-compose.yml and the Dockerfile, checked without Docker: every command is a real
``boxoffice`` invocation, every dependency and URL points at a service that exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from boxoffice.cli import build_parser
from boxoffice.services import SERVICES

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = {"migrate", "api", "ticket", "worker", "gateway"}
LONG_RUNNING = {"mysql", "redis", "api", "ticket", "worker", "gateway"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def boxoffice_invocations(command: list[str]) -> list[list[str]]:
    """The ``boxoffice …`` argument lists of a command (``sh -c "a && b"`` included)."""
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in re.split(r"&&", command[2])]
    return [command]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so anchors can merge"
    return {k: str(v) for k, v in env.items()}


def test_the_stack_has_every_piece(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == LONG_RUNNING | APP_SERVICES
    assert services["mysql"]["image"].startswith("mysql:8")
    assert services["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_commands_are_real_boxoffice_subcommands(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["image"] == services["api"]["image"], "one image for every process"
    invocations = boxoffice_invocations(service["command"])
    assert invocations
    for argv in invocations:
        assert argv[0] == "boxoffice", argv
        build_parser().parse_args(argv[1:])  # exits (fails the test) on a bad command


def test_each_service_runs_what_its_name_says(services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    for name in ("api", "ticket", "gateway"):
        args = parser.parse_args(services[name]["command"][1:])
        assert (args.command, args.service, args.host) == ("serve", name, "0.0.0.0")
        assert args.port == SERVICES[name].port
    assert parser.parse_args(services["worker"]["command"][1:]).command == "worker"
    migrate = [
        parser.parse_args(a[1:]) for a in boxoffice_invocations(services["migrate"]["command"])
    ]
    assert [a.command for a in migrate] == ["migrate", "seed"]
    assert migrate[1].demo


def test_dependencies_exist_and_conditions_hold(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            assert condition in CONDITIONS
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be one-shot"
    for name in APP_SERVICES - {"migrate"}:
        if name != "gateway":
            assert services[name]["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            )
    assert set(services["gateway"]["depends_on"]) >= {"api", "ticket", "redis"}


def test_no_dependency_cycles(services: dict[str, dict[str, Any]]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for target in services[name].get("depends_on", {}):
            visit(target, (*path, name))
        done.add(name)

    for name in services:
        visit(name, ())


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_long_running_services_have_healthchecks(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    test = services[name]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    if name in APP_SERVICES:
        # python -c urllib on the port this service really listens on
        code = test[-1]
        port = urlsplit(re.search(r"http://[^'\"]+", code).group(0)).port  # type: ignore[union-attr]
        expected = 8003 if name == "worker" else SERVICES[name].port
        assert port == expected
        assert "/healthz" in code
        compile(code, f"{name}-healthcheck", "exec")  # valid Python


def test_worker_ops_port_matches_its_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["worker"])
    assert env["BOXOFFICE_WORKER_METRICS_PORT"] == "8003"
    assert env["BOXOFFICE_WORKER_METRICS_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_settings_point_at_the_stack(services: dict[str, dict[str, Any]], name: str) -> None:
    env = _env(services[name])
    db = urlsplit(env["BOXOFFICE_DATABASE_URL"])
    assert db.scheme == "mysql+pymysql"
    assert db.hostname in services
    mysql_env = services["mysql"]["environment"]
    assert (db.username, db.password) == (mysql_env["MYSQL_USER"], mysql_env["MYSQL_PASSWORD"])
    assert db.path.lstrip("/") == mysql_env["MYSQL_DATABASE"]
    assert urlsplit(env["BOXOFFICE_REDIS_URL"]).hostname == "redis"
    for var, upstream in (
        ("BOXOFFICE_API_SERVER_URL", "api"),
        ("BOXOFFICE_TICKET_SERVER_URL", "ticket"),
    ):
        url = urlsplit(env[var])
        assert (url.hostname, url.port) == (upstream, SERVICES[upstream].port)
    for secret in ("BOXOFFICE_SECRET_KEY", "BOXOFFICE_ADMIN_TOKEN"):
        # Required from the operator (compose stops with the message), never a default.
        assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), env[secret]
    assert "BOXOFFICE_ALLOW_INSECURE_DEFAULTS" not in env


def test_only_the_gateway_is_published(services: dict[str, dict[str, Any]]) -> None:
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"gateway"}


def test_dockerfile_installs_the_package_on_python_311_slim() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert "pip install --no-deps ." in text
    assert re.search(r"^USER \w+", text, re.M), "does not run as root"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", ".env"} <= set(ignored)
