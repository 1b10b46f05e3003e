"""The whole journey by the accessible names of API.md: browse, search, sign in, join,
pick seats, hold, confirm, rankings, my tickets, cancel; and a reload mid-journey."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.web.system import Catalog


def seat(page: Page, label: str) -> Any:
    """The seat button whose accessible name begins with ``label``."""
    return page.get_by_role("button", name=re.compile(rf"^{re.escape(label)},"))


def sign_in(page: Page, nickname: str) -> None:
    """Fill in the guest form that a page asking for identity shows."""
    page.get_by_label("Nickname").fill(nickname)
    page.get_by_role("button", name="Continue").click()


def test_browse_book_confirm_rank_and_cancel(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session(rows=("A", "B", "C"), seats_per_row=6)
    page: Page = new_page()
    page.goto("/")
    page.get_by_role("searchbox", name="Search performances").fill(show["title"])
    page.get_by_role("link", name=show["title"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(show["title"])
    expect(page.get_by_text("open now")).to_be_visible()  # the countdown has run out
    page.get_by_role("link", name=re.compile("^Book")).click()

    sign_in(page, "Alice")
    page.get_by_role("button", name="Join the queue").click()
    expect(page.get_by_role("status")).to_contain_text("your turn")
    first, second = seat(page, "A-1"), seat(page, "A-2")
    first.click()
    second.click()
    expect(first).to_have_attribute("aria-pressed", "true")
    expect(second).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("timer")).to_contain_text("Held for")
    expect(first).to_be_disabled()  # held now (by us)
    page.get_by_role("button", name="Confirm reservation").click()

    expect(page.get_by_role("heading", name="Reservation confirmed")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Rank")
    expect(page.locator("main")).to_contain_text("A-1, A-2")
    page.get_by_role("link", name="Rankings").click()
    table = page.get_by_role("table")
    for column in ("Rank", "Nickname", "Time", "Seats"):
        expect(table.get_by_role("columnheader", name=column)).to_be_visible()
    expect(table.get_by_role("row").filter(has_text="Alice")).to_have_count(1, timeout=20_000)

    page.get_by_role("link", name="My tickets").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("main")).to_contain_text("Cancelled")
    page.reload()  # the server says so too
    expect(page.locator("main")).to_contain_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)


def test_reload_mid_journey_keeps_the_place_and_the_hold(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    page: Page = new_page()
    page.goto(f"/sessions/{show['id']}")  # a deep link, straight from the server
    sign_in(page, "Reloader")
    page.get_by_role("button", name="Join the queue").click()
    expect(page.get_by_role("status")).to_contain_text("your turn")
    page.reload()
    # Still admitted: the seat map comes back without joining again.
    seat(page, "B-3").click()
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("timer")).to_be_visible()
    page.reload()
    expect(page.get_by_role("timer")).to_contain_text("Held for")
    page.get_by_role("button", name="Confirm reservation").click()
    expect(page.get_by_role("heading", name="Reservation confirmed")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Reservation confirmed")).to_be_visible()
    expect(page.locator("main")).to_contain_text("B-3")


def test_expired_token_brings_back_the_form_and_resumes(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    page: Page = new_page()
    page.goto(f"/sessions/{show['id']}")
    sign_in(page, "First")
    expect(page.get_by_role("button", name="Join the queue")).to_be_visible()
    # The token expires (or is forged): the next API call gets a 401.
    page.evaluate(
        """() => {
          const u = JSON.parse(sessionStorage.getItem('bx.auth'));
          u.access_token = 'expired.token.value';
          sessionStorage.setItem('bx.auth', JSON.stringify(u));
        }"""
    )
    page.get_by_role("button", name="Join the queue").click()
    sign_in(page, "Second")
    # Back on the same page, ready to go on.
    expect(page).to_have_url(re.compile(rf"/sessions/{show['id']}$"))
    page.get_by_role("button", name="Join the queue").click()
    expect(page.get_by_role("status")).to_contain_text("your turn")
