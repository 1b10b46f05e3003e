"""The web app's files as the gateway serves them (gateway/web.py): deep links, types,
caching, the Content-Security-Policy, and no rate-limiter round trip for any of it."""

from __future__ import annotations

import contextlib
import re
import time
import tomllib
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gateway.testing import GatewayFactory, GatewayHarness, gateway_harness
from gateway.web import STATIC_DIR, load_bundle
from tests.fixtures.services import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]
DEEP_LINKS = ["/", "/performances/3", "/sessions/7", "/sessions/7/rankings", "/tickets",
              "/reservations/r_0123abc"]  # fmt: skip


def asset_urls(html: str) -> list[str]:
    """The /assets/ URLs the page names."""
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


class TestPages:
    @pytest.mark.parametrize("path", DEEP_LINKS)
    async def test_every_app_path_loads_the_page(self, gateway: GatewayHarness, path: str) -> None:
        r = await gateway.client.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert '<main id="main"' in r.text
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["etag"].startswith('"')
        assert "x-request-id" in r.headers  # the front layer's stages still apply

    @pytest.mark.parametrize(
        "path", ["/sessions/abc", "/sessions/7/seats", "/index.html", "/wp-admin", "/assets/x.js"]
    )
    async def test_other_paths_are_problem_404s(self, gateway: GatewayHarness, path: str) -> None:
        r = await gateway.client.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"

    async def test_api_paths_are_untouched(self, gateway: GatewayHarness) -> None:
        route = gateway.api.get("/api/performances").respond(200, json={"items": []})
        r = await gateway.client.get("/api/performances")
        assert r.status_code == 200
        assert r.json() == {"items": []}
        assert "content-security-policy" not in r.headers
        assert route.called
        gateway.api.get("/api/").respond(404, json={"detail": "upstream's own 404"})
        r = await gateway.client.get("/api/")  # proxied as before, never the page
        assert r.status_code == 404
        assert r.json() == {"detail": "upstream's own 404"}

    async def test_strict_csp_and_no_inline_code(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.get("/sessions/1")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        inline = InlineFinder()
        inline.feed(r.text)
        assert inline.found == []

    async def test_posting_to_a_page_is_405(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.post("/tickets", content=b"x")
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD"
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["request_id"] == r.headers["x-request-id"]

    async def test_page_revalidates_with_its_etag(self, gateway: GatewayHarness) -> None:
        first = await gateway.client.get("/")
        again = await gateway.client.get("/", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""

    async def test_the_page_tells_the_seat_limit(self, gateway_factory: GatewayFactory) -> None:
        async with gateway_factory(max_seats_per_user=6) as gw:
            r = await gw.client.get("/")
        assert '<meta name="bx-max-seats" content="6">' in r.text


class TestAssets:
    async def test_assets_are_immutable_with_their_types(self, gateway: GatewayHarness) -> None:
        page = await gateway.client.get("/")
        urls = asset_urls(page.text)
        assert any(u.endswith(".css") for u in urls)
        assert any(u.endswith(".js") for u in urls)
        for url in urls:
            r = await gateway.client.get(url)
            assert r.status_code == 200, url
            kind = "text/css" if url.endswith(".css") else "text/javascript"
            assert r.headers["content-type"] == f"{kind}; charset=utf-8"
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"

    async def test_modules_import_inside_the_same_build(self, gateway: GatewayHarness) -> None:
        bundle = load_bundle(max_seats_per_user=4)
        for url, file in bundle.assets.items():
            if not url.endswith(".js"):
                continue
            for spec in re.findall(rb"from '([^']+)'", file.body):
                target = (Path(url).parent / spec.decode()).as_posix()
                target = str(Path(target).resolve()) if ".." in target else target
                assert target in bundle.assets, (url, spec)

    async def test_gzip_when_accepted(self, gateway: GatewayHarness) -> None:
        page = await gateway.client.get("/")
        url = next(u for u in asset_urls(page.text) if u.endswith("main.js"))
        plain = await gateway.client.get(url, headers={"Accept-Encoding": "identity"})
        packed = await gateway.client.send(
            gateway.client.build_request("GET", url, headers={"Accept-Encoding": "gzip"}),
            stream=True,
        )
        raw = await packed.aread()  # httpx decodes; compare with the plain body instead
        await packed.aclose()
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["etag"] != plain.headers["etag"]  # one validator per encoding
        assert raw == plain.content
        assert int(packed.headers["content-length"]) < len(plain.content)

    async def test_head_has_no_body(self, gateway: GatewayHarness) -> None:
        r = await gateway.client.head("/")
        assert r.status_code == 200
        assert r.content == b""
        assert int(r.headers["content-length"]) > 0


class CountingLimiter:
    """Wraps the real limiter and counts its calls (each one is a Redis round trip)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def hit(self, group: str, subject: str) -> Any:
        self.calls.append(group)
        return await self.inner.hit(group, subject)


async def test_static_files_never_reach_the_rate_limiter(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(rate_limit={"enabled": True}) as gw:
        limiter = CountingLimiter(gw.app.state.rate_limiter)
        gw.app.state.rate_limiter = limiter
        page = await gw.client.get("/sessions/4")
        for url in asset_urls(page.text):
            assert (await gw.client.get(url)).status_code == 200
        assert limiter.calls == []
        gw.api.get("/api/venues").respond(200, json={"items": []})
        r = await gw.client.get("/api/venues")
        assert r.status_code == 200
        assert limiter.calls == ["browse"]  # the API still counts
        assert "ratelimit-limit" in r.headers


async def test_pages_load_with_the_limiters_redis_down() -> None:
    """A real Redis, stopped: the API's limiter meets the outage, page loads never do."""
    server = EmbeddedRedis()
    server.start()
    try:
        async with gateway_harness(
            server.url, rate_limit={"enabled": True, "redis_timeout_s": 0.2}
        ) as gw:
            registry = gw.app.state.metrics.registry
            server.stop()
            started = time.monotonic()
            page = await gw.client.get("/sessions/4")
            for url in asset_urls(page.text):
                assert (await gw.client.get(url)).status_code == 200
            assert page.status_code == 200
            assert time.monotonic() - started < 1.0
            assert limiter_redis_errors(registry) == 0
            gw.api.get("/api/venues").respond(200, json={"items": []})
            await gw.client.get("/api/venues")  # browse fails over to the local limiter
            assert limiter_redis_errors(registry) >= 1  # so the outage was real
    finally:
        with contextlib.suppress(Exception):
            server.stop()


def limiter_redis_errors(registry: Any) -> float:
    """The rate limiter's Redis errors so far, of any kind."""
    return sum(
        registry.get_sample_value("boxoffice_ratelimit_redis_errors_total", {"kind": k}) or 0.0
        for k in ("timeout", "connection", "error")
    )


def test_every_static_file_is_package_data() -> None:
    """The wheel ships the app: each file matches a package-data pattern of pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gateway"]
    served = [p for p in STATIC_DIR.rglob("*") if p.is_file() and p.suffix != ".md"]
    assert served
    for path in served:
        rel = path.relative_to(STATIC_DIR.parent).as_posix()
        assert any(fnmatch(rel, pattern.replace("**/", "*")) for pattern in patterns), rel


class InlineFinder(HTMLParser):
    """Collects inline scripts, inline styles and event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style" or "style" in names:
            self.found.append(f"inline style on <{tag}>")
        self.found.extend(f"{k} on <{tag}>" for k in names if k.startswith("on"))
