"""The admin check before the body: a pure-ASGI stage in front of the admin routes.

FastAPI reads and parses a request's whole body before it runs any dependency, so with the
check only in a dependency an anonymous client could make api_server wait on a body it
trickles (or never finishes) for every admin call. Here the header decides first; a refused
call is answered at once, its body unread, and the connection closed."""

from __future__ import annotations

from api_server.dependencies import check_admin_token
from svckit.errors import AppError, app_error_response
from svckit.middleware import ASGIApp, Receive, Scope, Send

ADMIN_PREFIX = "/api/admin"


class AdminGuard:
    """Refuse ``/api/admin`` requests without the right ``X-Admin-Token`` (401/403)."""

    def __init__(self, app: ASGIApp, *, admin_token: str) -> None:
        self.app = app
        self.admin_token = admin_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != ADMIN_PREFIX and not path.startswith(ADMIN_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        # The first header, as Starlette's ``Headers.get`` (and so the route's check) sees it.
        presented = next((v for k, v in scope["headers"] if k == b"x-admin-token"), None)
        try:
            check_admin_token(self.admin_token, presented)
        except AppError as exc:
            # The unread body stays on the connection: close it rather than parse it on.
            exc.headers["Connection"] = "close"
            request_id = scope.get("state", {}).get("request_id")
            await app_error_response(exc, request_id)(scope, receive, send)
            return
        await self.app(scope, receive, send)
