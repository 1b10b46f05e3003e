"""An ASGI HTTP scope for requests sent straight into the gateway's app in tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def http_scope(
    path: str, method: str = "GET", headers: Iterable[tuple[bytes, bytes]] = ()
) -> dict[str, Any]:
    """A loopback client's request for ``path`` (no query string), Host ``gateway.test``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"gateway.test"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("gateway.test", 80),
    }
