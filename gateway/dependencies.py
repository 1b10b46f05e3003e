"""FastAPI dependencies of the gateway-owned routes (queue), as ``Annotated`` aliases.

``CurrentUser`` is the identity the front layer (``gateway/front/authenticate.py``) already
verified for this request; routes marked ``auth`` in the route table never get here without
one.

It is ``async def`` although it never awaits: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hand-off per dependency per request, which showed in the gateway's
profile during the on-sale burst (logins, joins and status polls all use these).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.tokens import AccessClaims
from svckit.errors import Unauthorized


async def get_current_user(request: Request) -> AccessClaims:
    """The verified user of this request, else 401."""
    user = request.scope.get("state", {}).get("user")
    if not isinstance(user, AccessClaims):
        raise Unauthorized("an access token is required")
    return user


CurrentUser = Annotated[AccessClaims, Depends(get_current_user)]
