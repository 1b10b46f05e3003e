"""The route table at run time: path safety checks and first-match lookup.

Matching works on the *raw* (still percent-encoded) path, after :func:`check_path` has
refused anything that could mean something else once decoded: dot segments (plain or
encoded), encoded slashes or backslashes, empty segments (``//``), NUL, double encoding.
What passes is forwarded byte for byte (after an optional prefix rewrite), so an upstream can
never be reached outside the prefix that was matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config import GATEWAY, Route
from shared.ids import ID_PATTERN

# Encoded '/', '\', '.', NUL and '%' (double encoding) have no business in our public paths.
_BAD_ESCAPE = re.compile(rb"%(?:2[fFeE5]|5[cC]|00)")


class PathRejected(Exception):
    """The path is unsafe to route; answer 400 without touching an upstream."""


def check_path(raw_path: bytes) -> None:
    """Raise :class:`PathRejected` for traversal attempts and ambiguous encodings."""
    if not raw_path.startswith(b"/"):
        raise PathRejected("the path must start with '/'")
    if b"%" in raw_path and _BAD_ESCAPE.search(raw_path):
        raise PathRejected("encoded '/', '\\', '.', '%' or NUL in the path")
    if b"\\" in raw_path or b"\x00" in raw_path:
        raise PathRejected("backslash or NUL in the path")
    if b"//" in raw_path:
        raise PathRejected("empty path segment")
    if b"/." in raw_path:
        # Only whole "." / ".." segments are dangerous; "/.well-known" is fine.
        for segment in raw_path.split(b"/"):
            if segment in (b".", b".."):
                raise PathRejected("dot segment in the path")


def compile_template(template: str) -> re.Pattern[bytes]:
    """The raw-path regex of a path template (``/api/queue/{session_id}/join``): a
    ``{name_id}`` segment matches an id within ``shared/ids.py``'s digits, any other
    ``{name}`` one segment. The route table and the fast routes (``gateway/fastpath.py``)
    both compile their templates here."""
    parts = []
    for segment in template.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1]
            pattern = ID_PATTERN.encode() if name.endswith("_id") else rb"[^/]+"
            parts.append(b"(?P<" + name.encode() + b">" + pattern + b")")
        else:
            parts.append(re.escape(segment.encode()))
    return re.compile(b"/".join(parts) + b"\\Z")


@dataclass(frozen=True, slots=True)
class Match:
    """A matched route and where the request goes."""

    route: Route
    upstream_path: bytes  # raw, percent-encoded, without the query string
    session_id: int | None  # from a ``{session_id}`` template segment

    @property
    def is_local(self) -> bool:
        """Whether the gateway answers this itself (auth, queue)."""
        return self.route.upstream == GATEWAY


class _Compiled:
    __slots__ = ("exact", "methods", "prefix", "regex", "rewrite", "route")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.methods = route.methods
        self.rewrite = route.rewrite.encode() if route.rewrite is not None else None
        self.regex: re.Pattern[bytes] | None = None
        self.prefix = b""
        self.exact = b""
        if "{" in route.path:
            self.regex = compile_template(route.path)
        elif route.path.endswith("/"):
            self.prefix = route.path.encode()
            self.exact = self.prefix[:-1]  # "/api/ticketing" belongs to "/api/ticketing/"
        else:
            self.exact = route.path.encode()


class RouteTable:
    """First-match lookup over the configured routes."""

    def __init__(self, routes: list[Route]) -> None:
        self._entries = [_Compiled(r) for r in routes]

    @property
    def routes(self) -> list[Route]:
        """The routes, in match order."""
        return [e.route for e in self._entries]

    def match(self, method: str, raw_path: bytes) -> Match | None:
        """The first route that matches, or None (→ 404). ``raw_path`` must have passed
        :func:`check_path`."""
        for e in self._entries:
            if e.methods is not None and method not in e.methods:
                continue
            if e.regex is not None:
                m = e.regex.match(raw_path)
                if m is None:
                    continue
                sid = m.groupdict().get("session_id")
                return Match(e.route, raw_path, int(sid) if sid is not None else None)
            if e.prefix and raw_path.startswith(e.prefix):
                rest = raw_path[len(e.prefix) :]
                base = e.rewrite if e.rewrite is not None else e.prefix
                return Match(e.route, _join(base, rest), None)
            if raw_path == e.exact:
                base = e.rewrite if e.rewrite is not None else e.exact
                return (
                    Match(e.route, base.rstrip(b"/") or b"/", None)
                    if e.prefix
                    else Match(e.route, base, None)
                )
        return None


def _join(base: bytes, rest: bytes) -> bytes:
    if not base.endswith(b"/"):
        base += b"/"
    return base + rest
