"""An admin call without the right ``X-Admin-Token`` is refused before its body is read: a
served api_server answers a raw socket that sent headers and a stalled body at once."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.services import SERVE_SECRETS, boxoffice_serve, clean_environment

pytestmark = pytest.mark.slow

ADMIN_TOKEN = SERVE_SECRETS["BOXOFFICE_ADMIN_TOKEN"]
# Long enough to tell "at once" from "waited for the body"; the old code never answered.
ANSWER_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def api_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``boxoffice serve api`` (as production runs it) on its own SQLite file."""
    tmp = tmp_path_factory.mktemp("guard")
    env = clean_environment(
        BOXOFFICE_DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        BOXOFFICE_LOG_LEVEL="WARNING",
        **SERVE_SECRETS,
    )
    with boxoffice_serve("api", env, tmp / "api.log") as url:
        yield int(url.rsplit(":", 1)[1])


def _stalled_admin_call(port: int, token: str | None, framing: str) -> tuple[bytes, float]:
    """Send an admin POST's headers and the start of its body, then stop; return what came
    back before the server closed the connection (or the deadline) and how long it took."""
    headers = [
        "POST /api/admin/venues HTTP/1.1",
        "Host: api",
        "Content-Type: application/json",
        *([f"X-Admin-Token: {token}"] if token is not None else []),
        "Transfer-Encoding: chunked" if framing == "chunked" else "Content-Length: 60000",
    ]
    first = b"1\r\n{\r\n" if framing == "chunked" else b'{"name": "'
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as sock:
        started = time.monotonic()
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode() + first)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        return received, time.monotonic() - started


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("", 401), ("wrong-token", 403), (ADMIN_TOKEN[:-1], 403)]
)
def test_refused_before_the_body(api_port: int, token: str | None, status: int, framing: str):
    received, took = _stalled_admin_call(api_port, token, framing)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), received
    assert took < ANSWER_WITHIN_S - 1, took  # answered, and the connection closed, at once
    lines = head.lower().split(b"\r\n")
    assert b"content-type: application/problem+json" in lines
    assert b"connection: close" in lines
    problem = json.loads(body)
    assert problem["status"] == status
    assert any(line.startswith(b"x-request-id: ") for line in lines)


def test_the_right_token_still_waits_for_the_body(api_port: int) -> None:
    received, took = _stalled_admin_call(api_port, ADMIN_TOKEN, "chunked")
    assert received == b""  # the body is what it waits for: admitted past the check
    assert took >= ANSWER_WITHIN_S - 1
