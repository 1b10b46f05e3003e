"""The package boundaries of ARCHITECTURE.md, checked on the source: ``shared`` is data and
contracts only, services never import each other, the CLI imports no service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("gateway", "api_server", "ticket_server")


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level modules imported by each file of ``package``."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_shared_has_no_service_logic_or_io() -> None:
    forbidden = {
        "fastapi",
        "starlette",
        "redis",
        "httpx",
        "aiohttp",
        "uvicorn",
        "svckit",
        "boxoffice",
        *SERVICES,
    }
    offenders = {f: sorted(n & forbidden) for f, n in _imports("shared").items() if n & forbidden}
    assert offenders == {}


@pytest.mark.parametrize("service", SERVICES)
def test_services_do_not_import_each_other(service: str) -> None:
    if not (ROOT / service).is_dir():
        pytest.skip(f"{service} does not exist in this checkout")
    others = set(SERVICES) - {service}
    offenders = {f: sorted(n & others) for f, n in _imports(service).items() if n & others}
    assert offenders == {}


def test_cli_imports_no_service() -> None:
    offenders = {
        f: sorted(n & set(SERVICES)) for f, n in _imports("boxoffice").items() if n & set(SERVICES)
    }
    assert offenders == {}


def test_svckit_imports_no_service() -> None:
    offenders = {
        f: sorted(n & set(SERVICES)) for f, n in _imports("svckit").items() if n & set(SERVICES)
    }
    assert offenders == {}


def _project_imports(package: str) -> dict[str, set[str]]:
    """Project modules (dotted) imported by each module of ``package``, by module name."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                # ``from gateway.front import body`` imports the submodule gateway.front.body.
                names.update(
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").exists()
                )
        found[module] = names
    return found


def test_no_import_cycle_between_parts_of_the_gateway() -> None:
    """Each part of the gateway (a top-level module or subpackage: ``gateway.front``,
    ``gateway.identity``, ``gateway.routes``) may import others only one way round."""

    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module, names in _project_imports("gateway").items():
        deps = {part(n) for n in names if n.startswith("gateway.")} - {part(module)}
        graph.setdefault(part(module), set()).update(deps)

    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep in trail:
                cycles.append([*trail[trail.index(dep) :], dep])
            elif len(trail) < len(graph):
                visit(dep, [*trail, dep])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


def test_no_module_imports_another_modules_private_names() -> None:
    """Underscored names stay in their module (STYLE.md): one another module needs is part
    of an interface and gets a public name."""
    offenders: list[str] = []
    for package in ("gateway", "svckit", "shared", "api_server", "ticket_server", "boxoffice"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    if node.module.split(".")[0] not in {
                        *SERVICES,
                        "svckit",
                        "shared",
                        "boxoffice",
                    }:
                        continue
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            offenders.append(f"{path.relative_to(ROOT)}: {alias.name}")
    assert offenders == []


def test_no_gateway_module_is_over_400_lines() -> None:
    """A reader finds each stage by its name; no module grows into the one class every
    request passes through again (issue 18)."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "gateway").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def test_the_error_type_and_its_renderer_need_no_framework() -> None:
    """``svckit/problems.py`` (``AppError`` and ``send_error``) serves the pure-ASGI layers,
    which answer before any framework runs."""
    names = _imports("svckit")["svckit/problems.py"]
    assert not names & {"fastapi", "starlette"}
