"""The seat map without FastAPI's routing and dependency resolution.

The seat map is the most requested ticketing page at on-sale time, and in ticket_server's
profile FastAPI's stack cost about as much CPU as the work itself. This pure-ASGI layer
sits inside the common middleware (request id, body limit, access log, metrics and gzip
still apply) and answers ``GET /api/ticketing/sessions/{id}/seats`` with the route's own
checks (``ticket_server/dependencies.py``) and problems, storage failures included (the
503 of ``ticket_server/errors.py``). Everything else goes on to FastAPI: other requests and
ids that are no id (its 422). A request is never run twice: an unexpected error propagates
to the common error handling, as it would from the route.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from fastapi.security.utils import get_authorization_scheme_param

from shared.ids import ID_PATTERN, MAX_ID
from svckit.errors import AppError, app_error_response
from svckit.middleware import ASGIApp, Receive, Scope, Send
from ticket_server.dependencies import Ticketing, authenticate, verify_admission
from ticket_server.errors import STORAGE_ERRORS, storage_unavailable

_PATH = re.compile(rf"/api/ticketing/sessions/({ID_PATTERN})/seats\Z")
# What FastAPI's routing would have put in the scope: the access log and the metrics label
# requests by route template (svckit/middleware.py).
_ROUTE = SimpleNamespace(path="/api/ticketing/sessions/{session_id}/seats")


class SeatMapFastPath:
    """Pure-ASGI middleware: answers the seat map itself (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            _PATH.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        state = scope.get("state") or {}
        ctx: Ticketing | None = state.get("ticketing")
        session_id = int(found[1]) if found is not None else 0
        if ctx is None or not 1 <= session_id <= MAX_ID:
            await self.app(scope, receive, send)
            return
        authorization = admission = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"x-admission-token" and admission is None:
                admission = value.decode("latin-1")
        scope["route"] = _ROUTE
        scheme, token = get_authorization_scheme_param(authorization)
        bearer = token if scheme.lower() == "bearer" else None
        try:
            user = authenticate(bearer, tokens=ctx.tokens)
            verify_admission(admission, tokens=ctx.tokens, user=user, session_id=session_id)
            body = await ctx.inventory.seat_map_json(session_id)
        except AppError as e:
            await app_error_response(e, state.get("request_id"))(scope, receive, send)
            return
        except STORAGE_ERRORS as e:
            # Answered here as the route's handler would: asking FastAPI again would pay
            # the storage's timeout a second time. Anything else is a bug and propagates.
            error = storage_unavailable(e)
            await app_error_response(error, state.get("request_id"))(scope, receive, send)
            return
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
