"""Per-install secrets for ``boxoffice dev`` (``make run``) and the simulator's local system.

The settings' defaults are public, so a served process refuses them; dev mode instead makes
random secrets once, keeps them in ``<data dir>/secrets.env`` (mode 0600, ``NAME=value``
lines) and hands them to its children. The admin token for the admin API is read there.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from shared.config import DEV_ADMIN_TOKEN, DEV_SECRET_KEY, CommonSettings

SECRETS_FILE = "secrets.env"
SECRET_KEY_ENV = "BOXOFFICE_SECRET_KEY"
ADMIN_TOKEN_ENV = "BOXOFFICE_ADMIN_TOKEN"


def read_install_secrets(data_dir: Path) -> dict[str, str]:
    """The secrets saved under ``data_dir`` (empty if there are none yet)."""
    try:
        text = (data_dir / SECRETS_FILE).read_text()
    except FileNotFoundError:
        return {}
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in (SECRET_KEY_ENV, ADMIN_TOKEN_ENV):
            found[name.strip()] = value.strip()
    return found


def install_secrets(data_dir: Path) -> dict[str, str]:
    """The install's secrets under ``data_dir``, created on first use.

    The file is written whole under a temporary name (``mkstemp`` makes it 0600 whatever the
    umask) and linked into place, so two processes starting at once agree on one pair and
    nobody ever reads a half-written file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRETS_FILE
    saved = read_install_secrets(data_dir)
    if len(saved) == 2:
        return saved
    values = {
        SECRET_KEY_ENV: secrets.token_urlsafe(48),
        ADMIN_TOKEN_ENV: secrets.token_urlsafe(32),
    }
    fd, tmp = tempfile.mkstemp(prefix=".secrets-", dir=data_dir)
    try:
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{name}={value}\n" for name, value in values.items()))
        try:
            os.link(tmp, path)
        except FileExistsError:
            values = read_install_secrets(data_dir)  # another process won the race
    finally:
        os.unlink(tmp)
    if len(values) != 2:
        raise RuntimeError(f"{path} lacks {SECRET_KEY_ENV} or {ADMIN_TOKEN_ENV}; delete it")
    return values


def with_install_secrets(env: dict[str, str], settings: CommonSettings, data_dir: Path) -> None:
    """Put the install's secrets into a child ``env`` where ``settings`` has the defaults
    (secrets given in the environment or ``.env`` are kept as they are)."""
    missing = [
        name
        for name, value, default in (
            (SECRET_KEY_ENV, settings.secret_key, DEV_SECRET_KEY),
            (ADMIN_TOKEN_ENV, settings.admin_token, DEV_ADMIN_TOKEN),
        )
        if value == default
    ]
    if missing:
        saved = install_secrets(data_dir)
        for name in missing:
            env[name] = saved[name]


def admin_token_for(settings: CommonSettings) -> str:
    """The admin token a local tool should send: the configured one, else the install's."""
    if settings.admin_token != DEV_ADMIN_TOKEN:
        return settings.admin_token
    return read_install_secrets(Path(settings.data_dir)).get(ADMIN_TOKEN_ENV, settings.admin_token)


def secret_key_for(settings: CommonSettings) -> str:
    """The token-signing key a local tool should use: the configured one, else the install's."""
    if settings.secret_key != DEV_SECRET_KEY:
        return settings.secret_key
    return read_install_secrets(Path(settings.data_dir)).get(SECRET_KEY_ENV, settings.secret_key)
