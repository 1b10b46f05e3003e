"""``boxoffice dev`` needs no setup: it makes per-install secrets under the data directory
(mode 0600, kept across runs) and hands them to the processes it serves."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from boxoffice.dev import embedded_environment
from boxoffice.dev_secrets import (
    SECRETS_FILE,
    admin_token_for,
    install_secrets,
    read_install_secrets,
    secret_key_for,
)
from shared.config import DEV_ADMIN_TOKEN, DEV_SECRET_KEY, CommonSettings


@pytest.fixture
def no_secrets_in_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("BOXOFFICE_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


def test_made_once_private_and_strong(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # a usual umask would make a plain new file world-readable
    try:
        first = install_secrets(tmp_path / "data")
    finally:
        os.umask(old_umask)
    path = tmp_path / "data" / SECRETS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert install_secrets(tmp_path / "data") == first  # persisted, not remade
    settings = CommonSettings(
        secret_key=first["BOXOFFICE_SECRET_KEY"], admin_token=first["BOXOFFICE_ADMIN_TOKEN"]
    )
    assert settings.weak_secrets() == []
    assert first["BOXOFFICE_SECRET_KEY"] != first["BOXOFFICE_ADMIN_TOKEN"]
    assert install_secrets(tmp_path / "other") != first  # per install
    assert not [p for p in path.parent.iterdir() if p.name != SECRETS_FILE]  # no temp files


def test_processes_starting_at_once_agree_on_one_pair(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: install_secrets(tmp_path), range(16)))
    assert all(r == results[0] for r in results)
    assert read_install_secrets(tmp_path) == results[0]


@pytest.mark.usefixtures("no_secrets_in_env")
def test_dev_children_get_the_install_secrets(tmp_path: Path) -> None:
    settings = CommonSettings(
        data_dir=str(tmp_path), database_url="sqlite://", redis_url="redis://x:1/0"
    )
    assert settings.weak_secrets() == ["BOXOFFICE_SECRET_KEY", "BOXOFFICE_ADMIN_TOKEN"]
    env, started = embedded_environment(settings)
    assert started == []  # both URLs given: nothing embedded
    saved = read_install_secrets(tmp_path)
    assert env["BOXOFFICE_SECRET_KEY"] == saved["BOXOFFICE_SECRET_KEY"]
    assert env["BOXOFFICE_ADMIN_TOKEN"] == saved["BOXOFFICE_ADMIN_TOKEN"]
    child = CommonSettings(
        secret_key=env["BOXOFFICE_SECRET_KEY"], admin_token=env["BOXOFFICE_ADMIN_TOKEN"]
    )
    assert child.weak_secrets() == []
    # Local tools (the simulator against `make run`) find the same secrets.
    assert admin_token_for(settings) == saved["BOXOFFICE_ADMIN_TOKEN"]
    assert secret_key_for(settings) == saved["BOXOFFICE_SECRET_KEY"]


@pytest.mark.usefixtures("no_secrets_in_env")
def test_configured_secrets_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, token = "k" * 40, "t" * 40
    monkeypatch.setenv("BOXOFFICE_SECRET_KEY", key)
    settings = CommonSettings(
        data_dir=str(tmp_path), database_url="sqlite://", redis_url="redis://x:1/0"
    )
    env, _ = embedded_environment(settings)
    assert env["BOXOFFICE_SECRET_KEY"] == key
    assert env["BOXOFFICE_ADMIN_TOKEN"] != DEV_ADMIN_TOKEN  # only the default one is replaced
    both = CommonSettings(data_dir=str(tmp_path), secret_key=key, admin_token=token)
    assert (secret_key_for(both), admin_token_for(both)) == (key, token)


def test_weak_secrets_names_each_weak_one() -> None:
    strong = "s" * 32
    assert CommonSettings(secret_key=strong, admin_token=strong).weak_secrets() == []
    assert CommonSettings(secret_key=DEV_SECRET_KEY, admin_token=strong).weak_secrets() == [
        "BOXOFFICE_SECRET_KEY"
    ]
    assert CommonSettings(secret_key=strong, admin_token="s" * 31).weak_secrets() == [
        "BOXOFFICE_ADMIN_TOKEN"
    ]
    # An empty admin token disables the admin API: nothing to guess.
    assert CommonSettings(secret_key=strong, admin_token="").weak_secrets() == []
