"""The web app's files (``gateway/static/``), served at ``/`` by a small pure-ASGI stage.

The app is plain HTML, CSS and JavaScript modules: no build step. Its files are read once,
when the gateway is built, and answered from memory:

- ``/assets/<build>/…``: the CSS, the modules and the vendored library. ``<build>`` is a hash
  of every file, so a changed file has a new URL: these are cached for a year (``immutable``)
  and the modules' relative imports resolve inside the same build without being rewritten.
- the app's own paths (``/``, ``/performances/7``, ``/sessions/7``, ``/tickets`` …): the one
  HTML page (deep links load the app, which routes in the browser); revalidated on every load
  (``no-cache`` with an ``ETag``) so a new build is picked up at once.
- anything else falls through to the FastAPI app (ops routes, OpenAPI, 404 problems).

This stage sits inside the front layer (request id, access log, metrics) but the front layer
hands it only non-``/api/`` paths, which never reach the rate limiter: page loads cost no
Redis round trip. Every answer carries a strict Content-Security-Policy: scripts, styles and
connections from this origin only, no inline code.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from shared.problems import PROBLEM_CONTENT_TYPE, problem_body, problem_type
from svckit.middleware import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).with_name("static")
ASSETS_PREFIX = "/assets/"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".txt": b"text/plain; charset=utf-8",
}
# The browser-side routes of the app (gateway/static/js/router.js); only these load the page.
APP_PATHS = re.compile(
    r"\A/(?:|tickets|performances/\d{1,16}|sessions/\d{1,16}(?:/rankings)?"
    r"|reservations/[A-Za-z0-9_-]{1,64})\Z"
)
_IMMUTABLE = b"public, max-age=31536000, immutable"
_REVALIDATE = b"no-cache"
# Below this a gzip member costs more than it saves.
_GZIP_MIN = 512


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file, ready to send: its bytes (and gzipped bytes), type, ETag, cache policy."""

    body: bytes
    gzipped: bytes | None
    content_type: bytes
    etag: bytes
    etag_gzipped: bytes  # each representation has its own strong validator
    cache_control: bytes


def _file(body: bytes, content_type: bytes, cache_control: bytes) -> StaticFile:
    packed = gzip.compress(body, mtime=0) if len(body) >= _GZIP_MIN else None
    tag = hashlib.sha256(body).hexdigest()[:32].encode()
    return StaticFile(
        body, packed, content_type, b'"' + tag + b'"', b'"' + tag + b'-gz"', cache_control
    )


@dataclass(frozen=True, slots=True)
class WebBundle:
    """The app as served: the HTML page and the assets by URL path."""

    build: str
    page: StaticFile
    assets: dict[str, StaticFile]

    def asset_bytes(self) -> dict[str, int]:
        """Uncompressed bytes shipped per kind (html, css, js), for the benchmark."""
        sizes = {"html": len(self.page.body), "css": 0, "js": 0}
        for path, f in self.assets.items():
            kind = path.rsplit(".", 1)[-1]
            if kind in sizes:
                sizes[kind] += len(f.body)
        return sizes


def load_bundle(*, max_seats_per_user: int, root: Path = STATIC_DIR) -> WebBundle:
    """Read the app's files; the page learns the per-user seat limit from a meta tag."""
    files = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in _TYPES and p.name != "index.html"
    }
    digest = hashlib.sha256()
    for name, body in files.items():
        digest.update(name.encode() + b"\0" + body + b"\0")
    build = digest.hexdigest()[:12]
    base = f"{ASSETS_PREFIX}{build}/"
    html = (root / "index.html").read_text("utf-8")
    # Every module is preloaded: the browser fetches them in parallel instead of discovering
    # them import by import (a waterfall as deep as the import graph).
    preload = "\n".join(
        f'<link rel="modulepreload" href="{base}{name}">'
        for name in files
        if name.endswith(".js") and name != "js/main.js"
    )
    html = (
        html.replace("{{assets}}", base)
        .replace("{{preload}}", preload)
        .replace("{{max_seats}}", str(max_seats_per_user))
    )
    page = _file(html.encode(), _TYPES[".html"], _REVALIDATE)
    assets = {
        base + name: _file(body, _TYPES[Path(name).suffix], _IMMUTABLE)
        for name, body in files.items()
    }
    return WebBundle(build=build, page=page, assets=assets)


def _accepts_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"accept-encoding" and b"gzip" in value.lower():
            return True
    return False


def _etag_matches(headers: list[tuple[bytes, bytes]], etag: bytes) -> bool:
    for name, value in headers:
        if name == b"if-none-match":
            tags = [t.strip().removeprefix(b"W/") for t in value.split(b",")]
            return etag in tags or b"*" in tags
    return False


class WebApp:
    """Pure-ASGI stage: answers the app's paths, passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, bundle: WebBundle) -> None:
        self.app = app
        self.bundle = bundle

    def _lookup(self, path: str) -> StaticFile | None:
        if path.startswith("/api/"):
            return None
        if path.startswith(ASSETS_PREFIX):
            return self.bundle.assets.get(path)
        if APP_PATHS.match(path):
            return self.bundle.page
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self._lookup(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await self._not_allowed(scope, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        packed = found.gzipped is not None and _accepts_gzip(headers)
        etag = found.etag_gzipped if packed else found.etag
        out = [
            (b"content-type", found.content_type),
            (b"cache-control", found.cache_control),
            (b"etag", etag),
            (b"vary", b"Accept-Encoding"),
            *_SECURITY_HEADERS,
        ]
        if _etag_matches(headers, etag):
            await send({"type": "http.response.start", "status": 304, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
        body = found.body
        if packed:
            body = found.gzipped or body
            out.append((b"content-encoding", b"gzip"))
        out.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    @staticmethod
    async def _not_allowed(scope: Scope, send: Send) -> None:
        # The front layer adds X-Request-ID to the response; the body names it too.
        state = scope.get("state") or {}
        body = orjson.dumps(
            problem_body(
                status=405,
                title="Method Not Allowed",
                detail="the web app's pages are read with GET",
                type_=problem_type("method-not-allowed"),
                request_id=state.get("request_id"),
            )
        )
        headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"allow", b"GET, HEAD"),
        ]
        await send({"type": "http.response.start", "status": 405, "headers": headers})
        await send({"type": "http.response.body", "body": body})
