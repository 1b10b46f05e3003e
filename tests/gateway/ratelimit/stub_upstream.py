"""A stand-in upstream for the multi-process tests: answers 200 with a tiny JSON body to
anything (``uvicorn tests.gateway.ratelimit.stub_upstream:app``)."""

from __future__ import annotations

from typing import Any

BODY = b'{"items":[],"total":0}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Pure ASGI: cheap, so the gateways are what the test exercises."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})
