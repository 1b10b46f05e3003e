"""The web app in headless Chromium: first page load, the 1,000-seat map's render time, and
the bytes shipped.

    .venv/bin/python bench/web_app.py [--runs 7] [--rows 20] [--seats-per-row 50]

Starts the whole system (embedded SQLite and Valkey unless BOXOFFICE_DATABASE_URL /
BOXOFFICE_REDIS_URL are set; use your own database / DB index), makes a session of
rows x seats-per-row seats through the admin API, and drives Debian's ``chromium``:

- first load: a fresh browser context each run (empty cache) opens ``/``; the time from
  navigation start to the app's ``page-rendered`` mark (the performance list on screen), and
  to the ``load`` event;
- seat map: an admitted guest opens the session; ``seatmap-render`` is measured by the app
  from the start of building the map to the first frame that shows it (script, style and
  layout), ``seatmap-build`` the script part alone; the page is reloaded for each run;
- bytes: the HTML, CSS and JavaScript as served (uncompressed, and gzipped as the gateway
  sends them to browsers that accept it).

Goals (issue 17): the map renders in under 100 ms; the app ships under 100 KB uncompressed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchkit import ROOT  # noqa: F401  (puts the repository on sys.path)

from boxoffice.simulate.system import LocalSystem
from gateway.web import load_bundle
from tests.web.system import ApiUser, Catalog


def first_loads(browser: Any, url: str, runs: int) -> tuple[list[float], list[float]]:
    """(to page-rendered, to load event) in ms, each from a cold context."""
    rendered, loaded = [], []
    for _ in range(runs):
        context = browser.new_context(base_url=url)
        page = context.new_page()
        page.goto("/")
        page.wait_for_function("() => performance.getEntriesByName('page-rendered').length > 0")
        page.wait_for_load_state("load")
        rendered.append(page.evaluate("performance.getEntriesByName('page-rendered')[0].startTime"))
        loaded.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        context.close()
    return rendered, loaded


def seat_map_renders(
    browser: Any, url: str, session_id: int, runs: int
) -> tuple[list[float], list[float], int]:
    """(render ms, build ms, seat buttons) of the seat map, one per page load."""
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"/sessions/{session_id}")
    page.get_by_label("Nickname").fill("Bench")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Join the queue").click()
    render, build = [], []
    seats = 0
    for i in range(runs + 1):  # the first load warms the browser's caches; not counted
        if i:
            page.reload()
        page.wait_for_function(
            "() => performance.getEntriesByName('seatmap-render').length > 0", timeout=30_000
        )
        if i:
            render.append(
                page.evaluate("performance.getEntriesByName('seatmap-render')[0].duration")
            )
            build.append(page.evaluate("performance.getEntriesByName('seatmap-build')[0].duration"))
        seats = page.locator("button.seat").count()
    context.close()
    return render, build, seats


def summary(values: list[float]) -> str:
    """median (min–max) in ms."""
    return f"{statistics.median(values):.1f} ms (min {min(values):.1f}, max {max(values):.1f})"


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--seats-per-row", type=int, default=50)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    bundle = load_bundle(max_seats_per_user=4)
    plain = bundle.asset_bytes()
    packed = {"html": len(bundle.page.gzipped or bundle.page.body), "css": 0, "js": 0}
    for path, f in bundle.assets.items():
        kind = path.rsplit(".", 1)[-1]
        if kind in packed:
            packed[kind] += len(f.gzipped or f.body)

    logs = Path(tempfile.mkdtemp(prefix="bx-bench-web-"))
    os.environ.setdefault("BOXOFFICE_LOG_LEVEL", "WARNING")
    system = LocalSystem(gateways=1, log_dir=logs)
    target = system.start()
    try:
        catalog = Catalog(target)
        rows = tuple(f"{chr(65 + i % 26)}{i // 26 or ''}" for i in range(args.rows))  # A … Z, A1 …
        show = catalog.session(title="Bench Hall Show", rows=rows, seats_per_row=args.seats_per_row)
        # Some seats are taken, as in a real on-sale.
        taker = ApiUser(target.gateway_urls[0], "Taker")
        taker.join_until_admitted(show["id"])
        taker.hold(show["id"], [s["seat_id"] for s in show["seats"][:4]])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            rendered, loaded = first_loads(browser, target.gateway_urls[0], args.runs)
            render, build, seats = seat_map_renders(
                browser, target.gateway_urls[0], show["id"], args.runs
            )
            browser.close()
        taker.close()
        catalog.close()
    finally:
        system.stop()

    total, total_packed = sum(plain.values()), sum(packed.values())
    print(f"runs: {args.runs}; cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}")
    print(f"first load, navigation start → app rendered: {summary(rendered)}")
    print(f"first load, navigation start → load event:   {summary(loaded)}")
    print(f"seat map of {seats} seats, build → first frame: {summary(render)}")
    print(f"seat map of {seats} seats, build (script only): {summary(build)}")
    for kind in ("html", "css", "js"):
        print(f"{kind:>4}: {plain[kind]:6d} bytes ({packed[kind]:6d} gzipped)")
    print(f"total: {total} bytes = {total / 1024:.1f} KiB ({total_packed} gzipped)")
    print(f"goals: map < 100 ms: {statistics.median(render) < 100}; "
          f"app < 100 KB: {total < 100_000}")  # fmt: skip


if __name__ == "__main__":
    main()
