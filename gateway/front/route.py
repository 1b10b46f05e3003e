"""Stage 2, route: the path's safety, then the route-table entry it matches."""

from __future__ import annotations

from gateway.front.context import RequestContext
from gateway.routes import Match, PathRejected, RouteTable, check_path
from svckit.problems import BadRequest, NotFound


def route(ctx: RequestContext, table: RouteTable) -> Match:
    """Set (and return) ``ctx.match`` and the route group, else 400 for an unsafe path or
    a repeated credential header, 404 for no route."""
    raw_path: bytes = ctx.scope.get("raw_path") or ctx.path.encode()
    if b"?" in raw_path:  # some test transports leave the query in raw_path
        raw_path = raw_path.split(b"?", 1)[0]
    ctx.raw_path = raw_path
    ctx.group = "unmatched"
    if ctx.duplicated is not None:
        ctx.refuse_duplicates()
    try:
        check_path(raw_path)
    except PathRejected as e:
        raise BadRequest(str(e), slug="bad-path") from e
    match = table.match(ctx.method, raw_path)
    if match is None:
        raise NotFound("no such route")
    ctx.match = match
    ctx.group = match.route.group
    return match
