"""docker-compose.yml and the Dockerfile, checked without Docker: every command is a real
``boxoffice`` invocation, every dependency and URL points at a service that exists."""

from __future__ import annotations

import importlib
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
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


def check_dependencies(services: dict[str, dict[str, Any]]) -> None:
    """Every dependency names a service, with a condition that service can meet, and
    there are no cycles."""
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            assert condition in CONDITIONS
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be one-shot"
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


def test_dependencies_exist_and_conditions_hold(services: dict[str, dict[str, Any]]) -> None:
    check_dependencies(services)
    for name in APP_SERVICES - {"migrate"}:
        if name != "gateway":
            assert services[name]["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            )
    assert set(services["gateway"]["depends_on"]) >= {"api", "ticket", "redis"}


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


# docker-compose.cluster.yml: the scaled-out stack (README, "Deploying").

CLUSTER_FILE = "docker-compose.cluster.yml"
REDIS_NODES = {f"redis-{i}" for i in range(1, 7)}
CLUSTER_APPS = {"migrate", "api", "ticket", "worker-1", "worker-2", "gateway-1", "gateway-2"}
CLUSTER_ONE_SHOT = {"redis-cluster-create", "mysql-replication", "migrate"}
CLUSTER_SERVICES = (
    REDIS_NODES
    | CLUSTER_APPS
    | {"redis-cluster-create", "mysql", "mysql-replica", "mysql-replication", "lb"}
)
# What each app service runs, hence which settings class reads its environment.
SETTINGS_OF = {
    "migrate": "shared.config:CommonSettings",
    "api": "api_server.config:Settings",
    "ticket": "ticket_server.config:Settings",
    "worker": "ticket_server.worker.config:WorkerSettings",
    "gateway": "gateway.config:Settings",
}
# In the settings contract (shared API.md, "Redis topologies"); the Redis client layer
# reads it, and a checkout without that layer ignores it.
CONTRACT_ONLY = {"BOXOFFICE_REDIS_MODE"}


def role(name: str) -> str:
    """``worker-2`` → ``worker``."""
    return re.sub(r"-\d+$", "", name)


def resolve(value: str) -> str:
    """Compose's ``${VAR:-default}`` as it resolves with ``VAR`` unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def flags(command: list[str]) -> dict[str, str]:
    """``["--a=1", "--b=x"]`` → ``{"a": "1", "b": "x"}``."""
    return dict(arg[2:].split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / CLUSTER_FILE).read_text())
    return data


@pytest.fixture(scope="module")
def cservices(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = cluster["services"]
    return found


def test_cluster_stack_has_every_piece(cservices: dict[str, dict[str, Any]]) -> None:
    assert set(cservices) == CLUSTER_SERVICES
    for name in REDIS_NODES | {"redis-cluster-create"}:
        assert cservices[name]["image"].startswith("redis:7")
    for name in ("mysql", "mysql-replica", "mysql-replication"):
        assert cservices[name]["image"].startswith("mysql:8")
    assert cservices["lb"]["image"].startswith("nginx:")
    for name in CLUSTER_ONE_SHOT:
        assert cservices[name]["restart"] == "no"


def test_cluster_dependencies_exist_and_conditions_hold(
    cservices: dict[str, dict[str, Any]],
) -> None:
    check_dependencies(cservices)

    def waits_for(name: str, target: str, condition: str) -> bool:
        spec = cservices[name].get("depends_on", {}).get(target)
        return spec is not None and spec["condition"] == condition

    done = "service_completed_successfully"
    for name in ("ticket", "worker-1", "worker-2", "gateway-1", "gateway-2"):
        assert waits_for(name, "redis-cluster-create", done), name
    for name in ("api", "ticket", "worker-1", "worker-2"):
        assert waits_for(name, "migrate", done), name
        assert waits_for(name, "mysql", "service_healthy"), name
    assert waits_for("api", "mysql-replication", done)
    assert waits_for("api", "mysql-replica", "service_healthy")
    for gateway in ("gateway-1", "gateway-2"):
        assert waits_for(gateway, "api", "service_healthy")
        assert waits_for(gateway, "ticket", "service_healthy")
        assert waits_for("lb", gateway, "service_healthy")


@pytest.mark.parametrize("name", sorted(CLUSTER_SERVICES - CLUSTER_ONE_SHOT))
def test_cluster_long_running_services_have_healthchecks(
    cservices: dict[str, dict[str, Any]], name: str
) -> None:
    test = cservices[name]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    if name in CLUSTER_APPS:
        code = test[-1]
        port = urlsplit(re.search(r"http://[^'\"]+", code).group(0)).port  # type: ignore[union-attr]
        kind = role(name)
        assert port == (8003 if kind == "worker" else SERVICES[kind].port)
        assert "/healthz" in code
        compile(code, f"{name}-healthcheck", "exec")


@pytest.mark.parametrize("name", sorted(CLUSTER_APPS))
def test_cluster_apps_run_real_boxoffice_commands(
    cservices: dict[str, dict[str, Any]], name: str
) -> None:
    service = cservices[name]
    assert service["image"] == cservices["api"]["image"] == "boxoffice:local"
    parser = build_parser()
    parsed = [parser.parse_args(argv[1:]) for argv in boxoffice_invocations(service["command"])]
    kind = role(name)
    if kind == "migrate":
        assert [a.command for a in parsed] == ["migrate", "seed"]
    elif kind == "worker":
        assert [a.command for a in parsed] == ["worker"]
    else:
        (args,) = parsed
        assert (args.command, args.service, args.host) == ("serve", kind, "0.0.0.0")
        assert args.port == SERVICES[kind].port


def test_redis_cluster_has_three_masters_and_three_replicas(
    cservices: dict[str, dict[str, Any]],
) -> None:
    conf = (ROOT / "deploy/redis/node.conf").read_text()
    settings = dict(line.split(None, 1) for line in conf.splitlines() if line and line[0] != "#")
    assert settings["cluster-enabled"] == "yes"
    assert settings["appendonly"] == "yes"
    assert settings["cluster-preferred-endpoint-type"] == "hostname"
    assert settings["port"] == "6379"
    for name in REDIS_NODES:
        command = cservices[name]["command"]
        assert command[:2] == ["redis-server", "/usr/local/etc/redis/node.conf"]
        assert command[command.index("--cluster-announce-hostname") + 1] == name
        assert (
            "./deploy/redis/node.conf:/usr/local/etc/redis/node.conf:ro"
            in (cservices[name]["volumes"])
        )
    create = cservices["redis-cluster-create"]
    assert set(create["command"]) == REDIS_NODES
    assert len(create["command"]) == 6
    assert set(create["depends_on"]) == REDIS_NODES
    script = (ROOT / "deploy/redis/create-cluster.sh").read_text()
    # Six nodes with one replica each: three masters.
    assert "--cluster-replicas 1" in script
    assert "./deploy/redis/create-cluster.sh:/create-cluster.sh:ro" in create["volumes"]
    assert create["entrypoint"] == ["sh", "/create-cluster.sh"]


def test_mysql_replica_replicates_the_primary(cservices: dict[str, dict[str, Any]]) -> None:
    primary, replica = cservices["mysql"], cservices["mysql-replica"]
    p, r = flags(primary["command"]), flags(replica["command"])
    assert p["server-id"] != r["server-id"]
    for server in (p, r):
        assert server["gtid-mode"] == "ON"
        assert server["enforce-gtid-consistency"] == "ON"
        assert server["log-bin"]
    assert r["read-only"] == "ON"
    assert "MYSQL_DATABASE" not in replica["environment"], "users and schema come by replication"
    init = "./deploy/mysql/primary-init.sh:/docker-entrypoint-initdb.d/10-replication-users.sh:ro"
    assert init in primary["volumes"]
    assert os.access(ROOT / "deploy/mysql/primary-init.sh", os.X_OK), "executed, not sourced"
    job = cservices["mysql-replication"]
    env = _env(job)
    assert (env["PRIMARY_HOST"], env["REPLICA_HOST"]) == ("mysql", "mysql-replica")
    assert env["MYSQL_REPL_PASSWORD"] == str(primary["environment"]["MYSQL_REPL_PASSWORD"])
    assert env["MYSQL_PWD"] == str(replica["environment"]["MYSQL_ROOT_PASSWORD"])
    assert job["entrypoint"] == ["sh", "/start-replication.sh"]
    script = (ROOT / "deploy/mysql/start-replication.sh").read_text()
    assert "SOURCE_AUTO_POSITION=1" in script
    assert "SOURCE_USER='repl'" in script
    assert "CREATE USER 'repl'@'%'" in (ROOT / "deploy/mysql/primary-init.sh").read_text()


@pytest.mark.parametrize(
    "script",
    [
        "deploy/redis/create-cluster.sh",
        "deploy/mysql/start-replication.sh",
        "deploy/mysql/primary-init.sh",
    ],
)
def test_deploy_scripts_parse(script: str) -> None:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    subprocess.run([sh, "-n", str(ROOT / script)], check=True)


@pytest.mark.parametrize("name", sorted(CLUSTER_APPS))
def test_cluster_settings_point_at_the_stack(
    cservices: dict[str, dict[str, Any]], name: str
) -> None:
    env = {k: resolve(v) for k, v in _env(cservices[name]).items()}
    primary_env = {k: resolve(str(v)) for k, v in cservices["mysql"]["environment"].items()}
    db = urlsplit(env["BOXOFFICE_DATABASE_URL"])
    assert (db.scheme, db.hostname, db.port) == ("mysql+pymysql", "mysql", 3306)
    assert (db.username, db.password) == (primary_env["MYSQL_USER"], primary_env["MYSQL_PASSWORD"])
    assert db.path.lstrip("/") == primary_env["MYSQL_DATABASE"]
    assert urlsplit(env["BOXOFFICE_REDIS_URL"]).hostname in REDIS_NODES
    assert env["BOXOFFICE_REDIS_MODE"] == "cluster"
    for var, upstream in (
        ("BOXOFFICE_API_SERVER_URL", "api"),
        ("BOXOFFICE_TICKET_SERVER_URL", "ticket"),
    ):
        url = urlsplit(env[var])
        assert (url.hostname, url.port) == (upstream, SERVICES[upstream].port)
    assert len(env["BOXOFFICE_SECRET_KEY"]) >= 32
    assert env["BOXOFFICE_ADMIN_TOKEN"]
    if name == "api":
        read = urlsplit(env["BOXOFFICE_READ_DATABASE_URL"])
        assert (read.hostname, read.port) == ("mysql-replica", 3306)
        # The read-only user that primary-init.sh creates, with the primary's password for it.
        assert (read.username, read.password) == (
            "boxoffice_read",
            primary_env["MYSQL_READ_PASSWORD"],
        )
        assert read.path == db.path
    else:
        assert "BOXOFFICE_READ_DATABASE_URL" not in env
    if role(name) == "worker":
        assert env["BOXOFFICE_WORKER_CONSUMER"] == name, "a stable, distinct consumer name"
        assert env["BOXOFFICE_WORKER_METRICS_HOST"] == "0.0.0.0"


@pytest.mark.parametrize(
    ("file", "name"),
    [(CLUSTER_FILE, n) for n in sorted(CLUSTER_APPS)]
    + [("docker-compose.yml", n) for n in sorted(APP_SERVICES)],
)
def test_every_variable_is_a_setting_with_a_valid_value(
    file: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt variable would be ignored silently (settings ignore unknown names)."""
    service = yaml.safe_load((ROOT / file).read_text())["services"][name]
    module, _, cls_name = SETTINGS_OF[role(name)].partition(":")
    settings_cls = getattr(importlib.import_module(module), cls_name)
    known = {f"BOXOFFICE_{field.upper()}" for field in settings_cls.model_fields}
    for var in list(os.environ):
        if var.startswith("BOXOFFICE_"):
            monkeypatch.delenv(var)
    env = {k: resolve(v) for k, v in _env(service).items()}
    for var, value in env.items():
        assert var in known | CONTRACT_ONLY, f"{name}: {var} is not a setting"
        monkeypatch.setenv(var, value)
    settings = settings_cls(_env_file=None)  # raises on an invalid value
    assert settings.database_url == env["BOXOFFICE_DATABASE_URL"]


def test_gateways_sit_behind_the_load_balancer(
    cluster: dict[str, Any], cservices: dict[str, dict[str, Any]]
) -> None:
    conf = (ROOT / "deploy/nginx/cluster.conf").read_text()
    upstream = re.search(r"upstream gateways \{(.*?)\}", conf, re.S)
    assert upstream
    servers = set(re.findall(r"^\s*server ([\w-]+):(\d+)", upstream.group(1), re.M))
    assert servers == {("gateway-1", "8000"), ("gateway-2", "8000")}
    assert "proxy_pass http://gateways;" in conf
    assert "proxy_buffering off;" in conf, "server-sent events pass at once"
    lb = cservices["lb"]
    published = {name for name, s in cservices.items() if s.get("ports")}
    assert published == {"lb"}
    (mapping,) = lb["ports"]
    listen = re.search(r"^\s*listen (\d+);", conf, re.M)
    assert listen
    assert mapping == f"8000:{listen.group(1)}"
    assert "./deploy/nginx/cluster.conf:/etc/nginx/conf.d/default.conf:ro" in lb["volumes"]
    health = lb["healthcheck"]["test"][-1]
    assert urlsplit(health).path in conf
    assert urlsplit(health).port == int(listen.group(1))
    # The gateways trust exactly the balancer's fixed address for X-Forwarded-For, and that
    # address cannot be handed to another container.
    address = lb["networks"]["default"]["ipv4_address"]
    (pool,) = cluster["networks"]["default"]["ipam"]["config"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(pool["subnet"])
    assert ipaddress.ip_address(address) not in ipaddress.ip_network(pool["ip_range"])
    for gateway in ("gateway-1", "gateway-2"):
        assert _env(cservices[gateway])["BOXOFFICE_TRUSTED_PROXIES"] == f"{address}/32"
