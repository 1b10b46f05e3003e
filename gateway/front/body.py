"""Stage 3, body limit: a declared ``Content-Length`` is checked before anything else reads
the body (400 if it is not a number, 413 over the limit); a body read here is bounded, and
one read by the FastAPI app goes through svckit's ``LimitedBody``."""

from __future__ import annotations

from gateway.front.context import RequestContext
from gateway.proxy import BodyTooLarge, ClientGone, read_body
from svckit.http_server import REQUEST_TIMED_OUT
from svckit.middleware import Receive, declared_length
from svckit.problems import AppError, BadRequest, PayloadTooLarge


def check_length(ctx: RequestContext, limit: int) -> None:
    """Set ``ctx.length`` from ``Content-Length`` (-1: chunked), refusing a bad or too
    large one."""
    length = declared_length(ctx.content_length, limit)
    ctx.length = length if length is not None else (-1 if ctx.chunked else 0)


async def read(ctx: RequestContext, receive: Receive, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes (413 past it)."""
    try:
        return await read_body(receive, limit)
    except ClientGone as e:
        raise client_gone(ctx) from e
    except BodyTooLarge as e:
        raise PayloadTooLarge(limit) from e


def client_gone(ctx: RequestContext) -> AppError:
    """What the access log says of a client that left while its body was read: nobody
    reads this answer."""
    if ctx.scope["state"].get(REQUEST_TIMED_OUT):
        return AppError(
            "body too slow", status=408, title="Request Timeout", slug="request-timeout"
        )
    return BadRequest("client disconnected")
