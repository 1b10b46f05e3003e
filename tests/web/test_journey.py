"""The whole journey by the accessible names of API.md: browse, search, sign in, join,
pick seats, hold, confirm, rankings, my tickets, cancel; and a reload mid-journey."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.web.a11y import assert_accessible, screenshot
from tests.web.system import ApiUser, Catalog


def seat(page: Page, label: str) -> Any:
    """The seat button whose accessible name begins with ``label``."""
    return page.get_by_role("button", name=re.compile(rf"^{re.escape(label)},"))


def sign_in(page: Page, nickname: str) -> None:
    """Fill in the guest form that a page asking for identity shows."""
    page.get_by_label("Nickname").fill(nickname)
    page.get_by_role("button", name="Continue").click()


def test_browse_book_confirm_rank_and_cancel(
    new_page: Any, catalog: Catalog, tmp_path: Path
) -> None:
    """Every page of the journey, each checked with axe-core on the way."""
    rows = tuple("ABCDEFGH")
    show = catalog.session(title="Aurora Live in Seoul", rows=rows, seats_per_row=16)
    # Other people have booked already: their seats are taken on the map.
    by_label = {s["label"]: s["seat_id"] for s in show["seats"]}
    for nickname, labels in (("Early", ["A-5", "A-6", "A-7", "A-8"]), ("Earlier", ["E-9"])):
        other = ApiUser(catalog.url, nickname)
        other.join_until_admitted(show["id"])
        other.confirm(other.hold(show["id"], [by_label[x] for x in labels])["hold_id"])
        other.close()
    page: Page = new_page()
    page.goto("/")
    page.get_by_role("searchbox", name="Search performances").fill(show["title"])
    expect(page.get_by_role("link", name=show["title"])).to_have_count(1)
    assert_accessible(page, "home")
    page.get_by_role("link", name=show["title"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(show["title"])
    expect(page.get_by_text("open now")).to_be_visible()  # the countdown has run out
    assert_accessible(page, "performance")
    page.get_by_role("link", name=re.compile("^Book")).click()

    expect(page.get_by_label("Nickname")).to_be_visible()
    assert_accessible(page, "sign-in")
    sign_in(page, "Alice")
    expect(page.get_by_role("button", name="Join the queue")).to_be_visible()
    assert_accessible(page, "session, before joining")
    page.get_by_role("button", name="Join the queue").click()
    expect(page.get_by_role("status")).to_contain_text("your turn")
    first, second = seat(page, "D-7"), seat(page, "D-8")
    first.click()
    second.click()
    expect(first).to_have_attribute("aria-pressed", "true")
    expect(second).to_have_attribute("aria-pressed", "true")
    expect(seat(page, "A-5")).to_be_disabled()
    assert_accessible(page, "seat map")
    screenshot(page, "seat-map", tmp_path)
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("timer")).to_contain_text("Held for")
    expect(first).to_be_disabled()  # held now (by us)
    assert_accessible(page, "hold")
    page.get_by_role("button", name="Confirm reservation").click()

    expect(page.get_by_role("heading", name="Reservation confirmed")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Rank")
    expect(page.locator("main")).to_contain_text("D-7, D-8")
    assert_accessible(page, "confirmation")
    page.get_by_role("link", name="Rankings").click()
    table = page.get_by_role("table")
    for column in ("Rank", "Nickname", "Time", "Seats"):
        expect(table.get_by_role("columnheader", name=column)).to_be_visible()
    expect(table.get_by_role("row").filter(has_text="Alice")).to_have_count(1, timeout=20_000)
    assert_accessible(page, "rankings")

    page.get_by_role("link", name="My tickets").click()
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    assert_accessible(page, "my tickets")
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
