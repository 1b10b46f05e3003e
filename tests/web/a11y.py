"""axe-core (axe-playwright-python) on the page as it is now, and the README's screenshots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe

_axe = Axe()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_SCREENSHOTS_ENV = "BOXOFFICE_UPDATE_SCREENSHOTS"


def assert_accessible(page: Any, where: str) -> None:
    """No serious or critical axe-core violation on the page."""
    results = _axe.run(page)
    bad = [
        (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:5])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{where}: {bad}"


def screenshot(page: Any, name: str, tmp_dir: Path) -> Path:
    """Save a screenshot: always under ``tmp_dir``; into docs/screenshots/ (the README's)
    when BOXOFFICE_UPDATE_SCREENSHOTS=1, so a plain test run leaves the checkout alone."""
    target = SCREENSHOTS if os.environ.get(UPDATE_SCREENSHOTS_ENV) == "1" else tmp_dir
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
