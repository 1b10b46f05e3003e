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
