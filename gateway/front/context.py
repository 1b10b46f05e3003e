"""Stage 1, the request context: what every later stage reads (the request id, the headers
the front layer acts on), CORS, and what the access log will say."""

from __future__ import annotations

from gateway.routes import Match
from shared.tokens import AccessClaims
from svckit.middleware import Scope, Send, sane_request_id
from svckit.problems import BadRequest, Forbidden

_CORS_ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_ALLOW_HEADERS = (
    b"authorization, content-type, idempotency-key, x-admission-token, x-request-id"
)
_CORS_EXPOSE = (
    b"x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, location"
)


# The request headers the stages act on, in the order ``RequestContext`` unpacks them.
_READ = {
    name: i
    for i, name in enumerate(
        [
            b"x-request-id",
            b"content-length",
            b"content-type",
            b"authorization",
            b"origin",
            b"x-admission-token",
            b"transfer-encoding",
            b"access-control-request-method",
            b"access-control-request-headers",
        ]
    )
}
# Credentials that must come once (the gateway and a backend could each believe another).
_CREDENTIALS = {
    _READ[b"authorization"]: "Authorization",
    _READ[b"x-admission-token"]: "X-Admission-Token",
}


class RequestContext:
    """One request as the stages see it: filled in by each stage, read by the next ones."""

    __slots__ = (
        "acr_headers",
        "acr_method",
        "admission",
        "authorization",
        "chunked",
        "content_length",
        "content_type",
        "duplicated",
        "group",
        "headers",
        "length",
        "match",
        "method",
        "origin",
        "path",
        "raw_path",
        "request_id",
        "scope",
        "status",
        "upstream",
        "user",
    )

    def __init__(self, scope: Scope) -> None:
        """Read the headers the stages act on (one pass) and settle the request id."""
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        # One dict lookup per header, attributes set once after the loop: this runs on
        # every request, and most headers are none of these.
        found: list[bytes | None] = [None] * len(_READ)
        duplicated = None
        for name, value in scope["headers"]:
            i = _READ.get(name)
            if i is not None:
                if i in _CREDENTIALS and found[i] is not None:
                    duplicated = _CREDENTIALS[i]
                found[i] = value
        (
            raw_rid,
            self.content_length,
            self.content_type,
            self.authorization,
            self.origin,
            self.admission,
            chunked,
            self.acr_method,
            self.acr_headers,
        ) = found
        self.chunked = chunked is not None
        self.duplicated: str | None = duplicated
        self.request_id = sane_request_id(raw_rid)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = self.request_id
        # Added to whatever the request is answered with (CORS, rate-limit headers).
        self.headers: list[tuple[bytes, bytes]] = []
        self.raw_path = b""
        self.match: Match | None = None
        self.length = 0  # the body's declared size; -1: chunked, size unknown
        self.user: AccessClaims | None = None
        # For the access log and metrics.
        self.group = "ops"
        self.status = 500
        self.upstream = ""

    def refuse_duplicates(self) -> None:
        """Two credentials of one kind: the gateway and a backend could each believe another."""
        if self.duplicated is not None:
            raise BadRequest(f"more than one {self.duplicated} header", slug="duplicate-header")


class Cors:
    """CORS for the configured origins (``"*"``: any)."""

    __slots__ = ("any", "origins")

    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o.encode() for o in origins if o != "*")

    def allowed(self, origin: bytes | None) -> bool:
        """Whether ``origin`` may read the answers."""
        return origin is not None and (self.any or origin in self.origins)

    def apply(self, ctx: RequestContext) -> None:
        """Add the CORS headers of an allowed origin to the request's answer."""
        origin = ctx.origin
        if origin is not None and self.allowed(origin):
            ctx.headers.extend(
                [
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", _CORS_EXPOSE),
                    (b"vary", b"Origin"),
                ]
            )

    @staticmethod
    def is_preflight(ctx: RequestContext) -> bool:
        """An ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``."""
        return ctx.method == "OPTIONS" and ctx.origin is not None and ctx.acr_method is not None

    async def preflight(self, ctx: RequestContext, send: Send) -> None:
        """Answer a preflight: 204 with the allowed methods and headers, or 403."""
        ctx.group = "preflight"
        origin = ctx.origin
        if origin is None or not self.allowed(origin):
            raise Forbidden("origin not allowed", slug="cors-origin")
        headers = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", _CORS_ALLOW_METHODS),
            (b"access-control-allow-headers", ctx.acr_headers or _CORS_ALLOW_HEADERS),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
            (b"x-request-id", ctx.request_id.encode()),
        ]
        ctx.status = 204
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
