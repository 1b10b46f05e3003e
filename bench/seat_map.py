"""ticket_server's CPU per seat map request, with its pure-ASGI fast path and without it.

    .venv/bin/python bench/seat_map.py [--seats 1000] [--requests 1000] [--rounds 2]
        [--database-url URL] [--redis-url URL]

In-process, no HTTP and no client: the ASGI app is called directly with a prepared scope
(a valid access and admission token, ``Accept-Encoding: gzip``), so process CPU time per
call is the server's own work (checks, the Redis script round trip, rendering, gzip).
"Without" replaces the fast path (``ticket_server/inventory/fast.py``) by a pass-through,
so the FastAPI route answers. Rounds alternate. A SQLite file and an embedded Valkey unless
URLs are given (use your own database / DB index; nothing is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from benchkit import add_store_arguments, stores_for_bench

import ticket_server.app as ticket_app
from boxoffice.db import migrate
from shared.db.engine import make_engine
from tests.ticket_server.conftest import User, create_session, make_settings
from ticket_server.inventory.fast import SeatMapFastPath


class Passthrough:
    """Stands in for the fast path: every request goes on to FastAPI."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


async def cpu_per_call(
    fast: bool, *, database_url: str, redis_url: str, session_id: int, n: int
) -> float:
    """Process CPU µs per seat map call on a fresh app."""
    # create_app adds whatever the module's name points to.
    vars(ticket_app)["SeatMapFastPath"] = SeatMapFastPath if fast else Passthrough
    app = ticket_app.create_app(make_settings(database_url, redis_url=redis_url))
    async with app.router.lifespan_context(app) as state:
        user = User.new()
        headers = [(k.lower().encode(), v.encode()) for k, v in user.headers(session_id).items()]
        headers.append((b"accept-encoding", b"gzip"))
        path = f"/api/ticketing/sessions/{session_id}/seats"

        async def one() -> None:
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                "query_string": b"", "root_path": "", "headers": list(headers),
                "client": ("127.0.0.1", 1), "server": ("bench", 80), "state": dict(state or {}),
            }  # fmt: skip
            sent: list[Any] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: Any) -> None:
                sent.append(message)

            await app(scope, receive, send)
            assert sent[0]["status"] == 200, sent

        for _ in range(50):  # warm-up: seat map loaded, scripts cached
            await one()
        started = time.process_time()
        for _ in range(n):
            await one()
        return (time.process_time() - started) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seats", type=int, default=1000)
    p.add_argument("--requests", type=int, default=1000, help="calls per round")
    p.add_argument("--rounds", type=int, default=2)
    add_store_arguments(p)
    args = p.parse_args()

    with stores_for_bench(args.database_url, args.redis_url) as (database_url, redis_url):
        migrate(database_url)
        session_id = create_session(make_engine(database_url), seats=args.seats).session_id
        results: dict[str, list[float]] = {"fast path": [], "FastAPI route": []}
        for _ in range(args.rounds):
            for fast, name in ((True, "fast path"), (False, "FastAPI route")):
                results[name].append(
                    asyncio.run(
                        cpu_per_call(
                            fast,
                            database_url=database_url,
                            redis_url=redis_url,
                            session_id=session_id,
                            n=args.requests,
                        )
                    )
                )
    fast_us, route_us = min(results["fast path"]), min(results["FastAPI route"])
    print(f"{args.seats} seats, gzip, {args.requests} calls per round, {args.rounds} rounds")
    for name, values in results.items():
        print(f"{name:14s} CPU µs per seat map: " + ", ".join(f"{v:.0f}" for v in values))
    print(f"fast path / FastAPI route (best rounds): {fast_us / route_us:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
