"""Browser tests: Playwright drives Debian's headless Chromium against the real system
(api_server, ticket_server, a gateway and the worker as processes on free ports, on the
suite's database and Redis DB index), started once per test module.

Skipped with a reason when Chromium or Playwright is missing; ``.ci/run`` installs Chromium
and fails when no browser test passed (the suite prints "browser tests: N passed")."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from boxoffice.simulate.system import LocalSystem, Target, missing_pieces
from tests.fixtures.services import empty_tables
from tests.web.system import Catalog

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    import playwright.sync_api  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover - dev extras not installed
    HAVE_PLAYWRIGHT = False

SKIP_REASON = (
    "browser tests need Chromium (apt-get install chromium) "
    "and Playwright (pip install -e '.[dev]')"
    if not (CHROMIUM and HAVE_PLAYWRIGHT)
    else f"not in this checkout yet: {', '.join(missing_pieces())}"
)
AVAILABLE = bool(CHROMIUM and HAVE_PLAYWRIGHT and not missing_pieces())
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Short timings so holds expire within a test; the rest of the system keeps its defaults.
HOLD_TTL_S = 8


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here as a browser test (skipped, with the reason, without Chromium)."""
    for item in items:
        if "tests/web/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.integration)
            if not AVAILABLE:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="module")
def system(
    database_url: str, db_engine: Engine, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The whole system, started for this module on the suite's database and Redis index."""
    flush = redis.Redis.from_url(redis_url)
    flush.flushdb()
    logs = tmp_path_factory.mktemp("web-system")
    local = LocalSystem(gateways=1, log_dir=logs)
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("BOXOFFICE_"):
                mp.delenv(name)
        mp.setenv("BOXOFFICE_DATABASE_URL", database_url)
        mp.setenv("BOXOFFICE_REDIS_URL", redis_url)
        mp.setenv("BOXOFFICE_DATA_DIR", str(logs / "data"))
        mp.setenv("BOXOFFICE_HOLD_TTL_S", str(HOLD_TTL_S))
        mp.setenv("BOXOFFICE_LOG_LEVEL", "WARNING")
        # A loaded 2-core box can exceed the limiter's 0.1 s Redis bound by scheduling
        # delay alone; these tests are about the app, not the limiter.
        mp.setenv("BOXOFFICE_RATE_LIMIT", '{"redis_timeout_s": 0.5}')
        try:
            target = local.start()
        except BaseException:
            local.stop()
            raise
    try:
        yield target
    finally:
        local.stop()
        flush.flushdb()
        flush.close()
        empty_tables(db_engine)


@pytest.fixture(scope="module")
def catalog(system: Target) -> Iterator[Catalog]:
    """Admin helper on the module's system."""
    c = Catalog(system)
    yield c
    c.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module: Playwright's sync API runs an event loop of its
    own, which must be gone before any asyncio test of another module runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any, catalog: Catalog) -> Iterator[Any]:
    """``new_page()`` → a page in a fresh browser context (its own sessionStorage: a
    different person); every context is closed after the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make() -> Any:
        context = browser.new_context(base_url=catalog.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        # Uncaught exceptions and CSP violations are bugs of the app, whatever the test does.
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: (
                errors.append(f"console: {m.text}")
                if m.type == "error" and "Content-Security-Policy" in m.text
                else None
            ),
        )
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors
