"""Stage 7a, dispatch to the gateway itself: a fast route or fast create answers without
FastAPI (``gateway/fastpath.py``); anything else, and anything they decline, goes to the
inner FastAPI app (auth, queue, ops, OpenAPI) behind svckit's body-limit wrapper."""

from __future__ import annotations

from starlette.datastructures import State

from gateway.fastpath import FastCreate, FastRoute
from gateway.front.body import read
from gateway.front.context import RequestContext
from svckit.middleware import ASGIApp, LimitedBody, Message, Receive, Send

# Bodies the fast path reads itself; anything larger goes to the FastAPI route.
FAST_BODY_MAX = 4096


def is_json(content_type: bytes) -> bool:
    """``application/json``, whatever its case and parameters (FastAPI reads such a body as
    JSON too; ``json.loads`` finds the encoding itself)."""
    return (
        content_type == b"application/json"
        or content_type.split(b";", 1)[0].strip().lower() == b"application/json"
    )


def replay(data: bytes, receive: Receive) -> Receive:
    """``receive`` for an app, after the body was read here: the body first, then whatever
    the client sends (a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": data, "more_body": False}

    return replayed


async def send_json(send: Send, ctx: RequestContext, data: bytes, status: int) -> None:
    """A whole JSON response with the request's headers."""
    ctx.status = status
    headers = [
        (b"content-length", str(len(data)).encode()),
        (b"content-type", b"application/json"),
        (b"x-request-id", ctx.request_id.encode()),
        *ctx.headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class LocalDispatch:
    """Answers what the gateway owns: the fast paths first, then the FastAPI app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: State,
        limit: int,
        fast_routes: list[FastRoute],
        fast_creates: list[FastCreate],
    ) -> None:
        self.app = app
        self.state = state
        self.limit = limit
        self.fast_routes = fast_routes
        self.fast_creates = {f.path: f for f in fast_creates}

    async def __call__(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        """Answer a matched gateway-owned route."""
        method = ctx.method
        if method == "POST":
            create = self.fast_creates.get(ctx.raw_path)
            content_type = ctx.content_type
            if (
                create is not None
                and 0 < ctx.length <= FAST_BODY_MAX
                and content_type is not None
                and is_json(content_type)
            ):
                data = await read(ctx, receive, self.limit)
                answer = create.handler(self.state, data)
                if answer is not None:
                    await send_json(send, ctx, answer, 201)
                    return
                receive = replay(data, receive)
        user = ctx.user
        if user is not None:
            for fast in self.fast_routes:
                session_id = fast.session_id(method, ctx.raw_path)
                if session_id is None:
                    continue
                answer = await fast.handler(self.state, session_id, user)
                if answer is not None:
                    await send_json(send, ctx, answer, 200)
                    return
                break
        await self.inner(ctx, receive, send)

    async def inner(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        """Hand the request to the FastAPI app, adding the request's headers to its answer."""
        limited = LimitedBody(
            receive,
            send,
            limit=self.limit,
            request_id=ctx.request_id,
            headers=[(b"x-request-id", ctx.request_id.encode()), *ctx.headers],
        )
        try:
            await self.app(ctx.scope, limited.receive, limited.send)
        except Exception:
            if not (limited.rejected or limited.started):
                raise
            # Our 413, or FastAPI's server-error layer already answered 500 and logged.
        finally:
            ctx.status = limited.status
