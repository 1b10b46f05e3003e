"""The ``boxoffice`` command line, run as a real process: ``migrate`` and ``seed --demo``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from boxoffice.cli import build_parser, main
from shared.db.engine import make_engine
from shared.db.models import Performance, PerformanceSession, Seat, Venue
from tests.fixtures.services import SERVE_SECRETS

ROOT = Path(__file__).resolve().parent.parent


def boxoffice(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``boxoffice <args>`` with a clean ``BOXOFFICE_*`` environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env["BOXOFFICE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "boxoffice.cli", *args],
        cwd=data_dir,  # no stray .env from the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A SQLite file migrated and seeded twice by the CLI; the seed runs' stdout."""
    data_dir = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{data_dir / 'demo.sqlite3'}"
    migrated = boxoffice("migrate", "--url", url, data_dir=data_dir)
    assert migrated.returncode == 0, migrated.stderr
    outputs = []
    for _ in range(2):
        run = boxoffice("seed", "--demo", "--url", url, data_dir=data_dir)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    return url, outputs


@pytest.mark.slow
def test_seed_twice_adds_nothing_the_second_time(seeded: tuple[str, list[str]]) -> None:
    url, (first, second) = seeded
    assert "3 performance(s) added" in first
    assert "0 performance(s) added" in second
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            counts = [
                db.scalar(select(func.count()).select_from(model))
                for model in (Venue, Performance, PerformanceSession)
            ]
            titles = db.scalars(select(Performance.title)).all()
    finally:
        engine.dispose()
    assert counts == [2, 3, 7]  # nothing duplicated by the second run
    assert len(set(titles)) == len(titles)


@pytest.mark.slow
def test_demo_has_a_session_open_for_booking_now(seeded: tuple[str, list[str]]) -> None:
    url, _ = seeded
    now = datetime.now(UTC)
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            open_now = db.execute(
                select(PerformanceSession.id, Performance.venue_id)
                .join(Performance)
                .where(
                    PerformanceSession.booking_opens_at <= now,
                    PerformanceSession.starts_at > now,
                )
            ).all()
            assert open_now, "no session is open for booking"
            venue_id = open_now[0][1]
            grades = db.execute(
                select(Seat.grade, func.count())
                .where(Seat.venue_id == venue_id)
                .group_by(Seat.grade)
            ).all()
    finally:
        engine.dispose()
    seats = sum(n for _, n in grades)
    assert 200 <= seats <= 1000  # "a few hundred"
    assert len(grades) >= 3


def test_migrate_defaults_to_the_sqlite_file_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("BOXOFFICE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BOXOFFICE_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["migrate"]) == 0
    assert (tmp_path / "boxoffice.sqlite3").is_file()


def test_seed_without_demo_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed"]) == 2
    assert "--demo" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["launch"], ["serve", "db"], []])
def test_unknown_subcommands_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_worker_options_reach_the_worker(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--batch-size", "5", "--help"])
    assert exit_info.value.code == 0
    assert "--batch-size" in capsys.readouterr().out


@pytest.mark.parametrize(("given", "loop"), [(None, "asyncio"), ("uvloop", "uvloop")])
def test_serve_runs_the_configured_event_loop(
    monkeypatch: pytest.MonkeyPatch, given: str | None, loop: str
) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: seen.update(kw))
    for name, value in SERVE_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BOXOFFICE_EVENT_LOOP", given or "asyncio")
    if given is None:
        monkeypatch.delenv("BOXOFFICE_EVENT_LOOP")
    assert main(["serve", "gateway", "--port", "1"]) == 0
    assert seen["loop"] == loop
    assert seen["http"] == "svckit.http_server:CoalescingHttpToolsProtocol"
    # Only BOXOFFICE_TRUSTED_PROXIES vouches for X-Forwarded-For (tests/boxoffice/test_serve.py).
    assert seen["proxy_headers"] is False
