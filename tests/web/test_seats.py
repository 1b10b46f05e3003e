"""The seat map under contention: two browsers race for a seat, a hold expires, the
per-user limit, and the keyboard."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.web.conftest import HOLD_TTL_S
from tests.web.system import ApiUser, Catalog
from tests.web.test_journey import seat, sign_in


def admitted_page(new_page: Any, session_id: int, nickname: str) -> Page:
    """A browser user on the seat map of the session."""
    page: Page = new_page()
    page.goto(f"/sessions/{session_id}")
    sign_in(page, nickname)
    page.get_by_role("button", name="Join the queue").click()
    expect(page.get_by_role("status")).to_contain_text("your turn")
    expect(seat(page, "A-1")).to_be_visible()
    return page


def test_two_browsers_race_for_one_seat(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    one = admitted_page(new_page, show["id"], "Racer One")
    two = admitted_page(new_page, show["id"], "Racer Two")
    for page in (one, two):
        # The maps stop refreshing, so neither learns of the other's hold before holding.
        page.route(f"**/api/ticketing/sessions/{show['id']}/seats", lambda r: r.abort())
    seat(one, "A-1").click()
    seat(one, "A-2").click()
    seat(two, "A-1").click()
    seat(two, "B-1").click()
    one.get_by_role("button", name="Hold seats").click()
    two.get_by_role("button", name="Hold seats").click()

    timers = [p.get_by_role("timer") for p in (one, two)]
    expect(one.get_by_role("alert").or_(timers[0])).to_be_visible()
    expect(two.get_by_role("alert").or_(timers[1])).to_be_visible()
    won = [p for p, t in zip((one, two), timers, strict=True) if t.count()]
    assert len(won) == 1, "exactly one browser holds A-1"
    loser = two if won[0] is one else one
    kept = "B-1" if loser is two else "A-2"
    expect(loser.get_by_role("alert")).to_contain_text("A-1 was just taken")
    taken = seat(loser, "A-1")
    expect(taken).to_be_disabled()
    expect(taken).to_have_accessible_name(re.compile("just taken"))
    expect(seat(loser, kept)).to_have_attribute("aria-pressed", "true")  # kept
    expect(loser.get_by_role("button", name="Hold seats")).to_be_enabled()
    loser.get_by_role("button", name="Hold seats").click()  # the rest can still be held
    expect(loser.get_by_role("timer")).to_be_visible()


def test_hold_expires_and_the_seats_go_back_on_sale(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    page = admitted_page(new_page, show["id"], "Slowpoke")
    seat(page, "A-3").click()
    page.get_by_role("button", name="Hold seats").click()
    timer = page.get_by_role("timer")
    expect(timer).to_contain_text("Held for")
    expect(seat(page, "A-3")).to_be_disabled()
    expect(page.get_by_role("alert")).to_contain_text(
        "hold expired", timeout=(HOLD_TTL_S + 5) * 1000
    )
    expect(timer).to_have_count(0)
    expect(page.get_by_role("button", name="Confirm reservation")).to_have_count(0)
    expect(seat(page, "A-3")).to_be_enabled(timeout=15_000)  # back on sale


def test_keyboard_reaches_every_seat_and_the_limit_holds(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session(rows=("A", "B"), seats_per_row=4)
    page = admitted_page(new_page, show["id"], "Keys")
    first = seat(page, "A-1")
    first.focus()
    page.keyboard.press("Space")
    expect(first).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("ArrowRight")
    expect(seat(page, "A-2")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("End")
    expect(seat(page, "A-4")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(seat(page, "B-4")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Home")
    page.keyboard.press("Space")
    expect(seat(page, "B-1")).to_have_attribute("aria-pressed", "true")
    # A fifth seat is one too many (the per-user limit, 4 by default).
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    expect(seat(page, "B-2")).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_text("You can pick up to 4 seats.")).to_be_visible()
    # One tab stop for the whole map: Tab leaves it for the next control.
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Hold seats")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("timer")).to_be_visible()


def test_the_open_map_shows_what_others_take(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    page = admitted_page(new_page, show["id"], "Watcher")
    other = ApiUser(catalog.url, "Quick")
    try:
        other.join_until_admitted(show["id"])
        by_label = {s["label"]: s["seat_id"] for s in show["seats"]}
        expect(seat(page, "B-5")).to_be_enabled()
        other.hold(show["id"], [by_label["B-5"]])
        expect(seat(page, "B-5")).to_be_disabled(timeout=10_000)  # the map refreshes itself
        expect(seat(page, "B-5")).to_have_accessible_name(re.compile(r"^B-5, R, 90,000, held"))
    finally:
        other.close()
