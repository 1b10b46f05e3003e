"""Fast routes: gateway-owned endpoints the front layer answers itself, without FastAPI.

A fast route is declared next to its FastAPI route and handler (``gateway/queue/router.py``,
``gateway/identity/router.py``), with the same path template; its path is compiled as the
route table compiles its own (``gateway.routes.compile_template``), and an id in it is
accepted within the same bound as the FastAPI route's (``shared/ids.py``). The FastAPI route
stays: it documents the endpoint in the OpenAPI document, and answers whatever the fast path
declines (an id out of range, a body that is not a valid model), so that every problem is
the route's own. The dispatch stage (``gateway/front/local.py``) runs them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.datastructures import State

from gateway.routes import compile_template
from shared.ids import MAX_ID
from shared.tokens import AccessClaims


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A route with one id in its path (``/api/queue/{session_id}/join``): ``handler`` gets
    the id and the verified user and returns the JSON body of a 200, raises an ``AppError``
    for a problem, or returns None to let the FastAPI route answer."""

    method: str
    template: str
    handler: Callable[[State, int, AccessClaims], Awaitable[bytes | None]]
    path: re.Pattern[bytes] = field(init=False)

    def __post_init__(self) -> None:
        path = compile_template(self.template)
        if path.groups != 1:
            raise ValueError(f"a fast route has one id in its path: {self.template!r}")
        object.__setattr__(self, "path", path)

    def session_id(self, method: str, raw_path: bytes) -> int | None:
        """The id in ``raw_path`` if this route matches it and the id is within the bound the
        FastAPI route validates (else None: the FastAPI route answers)."""
        if method != self.method:
            return None
        found = self.path.match(raw_path)
        if found is None:
            return None
        value = int(found[1])
        return value if 1 <= value <= MAX_ID else None


@dataclass(frozen=True, slots=True)
class FastCreate:
    """A ``POST`` of a small JSON body to a path without ids (``/api/auth/guest``):
    ``handler`` gets the body and returns the JSON body of a 201, or None to let the
    FastAPI route answer (it then reads the same body)."""

    template: str
    handler: Callable[[State, bytes], bytes | None]
    path: bytes = field(init=False)

    def __post_init__(self) -> None:
        if compile_template(self.template).groups:
            raise ValueError(f"a fast create has no ids in its path: {self.template!r}")
        object.__setattr__(self, "path", self.template.encode())
