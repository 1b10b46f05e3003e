"""A served process freezes its start-up heap out of the collector's full passes; in-process
apps (tests) and a disabled setting leave the collector alone."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_server.app import create_app
from api_server.config import Settings
from boxoffice.cli import main
from svckit.gc_tuning import FULL_PASS_EVERY, freeze_startup_heap, space_full_collections
from tests.fixtures.services import SERVE_SECRETS


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Every test starts and ends with nothing frozen (the rest of the suite expects it)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezes_what_is_alive_when_enabled() -> None:
    survivor = [object() for _ in range(10)]
    frozen = freeze_startup_heap(True)
    assert frozen > len(survivor)
    assert gc.get_freeze_count() == frozen
    # Frozen objects are out of every generation a collection walks.
    assert not any(o is survivor for o in gc.get_objects())


def test_does_nothing_when_disabled() -> None:
    assert freeze_startup_heap(False) == 0
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_service_freezes_after_start_up_only_when_set(
    tmp_path: Path, enabled: bool
) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/t.sqlite3", gc_freeze=enabled))
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert (gc.get_freeze_count() > 0) is enabled


@pytest.mark.parametrize(("given", "expected"), [(None, "true"), ("false", "false")])
def test_serve_turns_it_on_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, given: str | None, expected: str
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(*args: Any, **kwargs: Any) -> None:
        seen["env"] = os.environ.get("BOXOFFICE_GC_FREEZE")

    monkeypatch.setattr("uvicorn.run", fake_run)
    for name, value in SERVE_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BOXOFFICE_GC_FREEZE", "placeholder")  # restored after the test
    if given is None:
        monkeypatch.delenv("BOXOFFICE_GC_FREEZE")
    else:
        monkeypatch.setenv("BOXOFFICE_GC_FREEZE", given)
    assert main(["serve", "api"]) == 0
    assert seen["env"] == expected


def test_spacing_full_collections_changes_only_the_oldest_threshold() -> None:
    before = gc.get_threshold()
    try:
        space_full_collections()
        assert gc.get_threshold() == (before[0], before[1], FULL_PASS_EVERY)
        assert FULL_PASS_EVERY > 10  # CPython's default: every 10 middle-generation passes
    finally:
        gc.set_threshold(*before)
