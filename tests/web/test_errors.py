"""Errors as people meet them: 429 waits out Retry-After, 503 and network errors are
retried, a confirm retried after a lost answer books once, and a problem's detail is shown."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from playwright.sync_api import Page, Route, expect

from tests.web.system import Catalog
from tests.web.test_journey import seat, sign_in


def problem(route: Route, status: int, retry_after: int) -> None:
    """Answer with a problem and Retry-After, as the gateway's limiter or breaker would."""
    body = {"title": "Busy", "status": status, "detail": "try again later"}
    route.fulfill(
        status=status,
        headers={"retry-after": str(retry_after), "content-type": "application/problem+json"},
        body=json.dumps(body),
    )


def test_429_waits_out_retry_after(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    page: Page = new_page()
    seen: list[float] = []

    def busy_once(route: Route) -> None:
        seen.append(time.monotonic())
        if len(seen) == 1:
            problem(route, 429, retry_after=2)
        else:
            route.continue_()

    page.route(f"**/api/performances/{show['performance_id']}", busy_once)
    page.goto(f"/performances/{show['performance_id']}")
    expect(page.get_by_role("alert")).to_contain_text("retrying in 2 s")
    expect(page.get_by_role("heading", level=1)).to_have_text(show["title"])
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 1.9  # it waited as told
    expect(page.get_by_role("alert")).to_be_hidden()


def test_503_and_network_errors_are_retried(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    page: Page = new_page()
    calls: list[str] = []

    def flaky(route: Route) -> None:
        calls.append(route.request.url)
        if len(calls) == 1:
            route.abort("connectionreset")
        elif len(calls) == 2:
            problem(route, 503, retry_after=1)
        else:
            route.continue_()

    page.route(re.compile(r"/api/performances\?"), flaky)
    page.goto("/")
    expect(page.get_by_role("link", name=show["title"])).to_be_visible()
    assert len(calls) == 3


def test_confirm_retried_after_a_lost_answer_books_once(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session()
    page: Page = new_page()
    page.goto(f"/sessions/{show['id']}")
    sign_in(page, "Unlucky")
    page.get_by_role("button", name="Join the queue").click()
    seat(page, "A-4").click()
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("timer")).to_be_visible()
    keys: list[str | None] = []

    def lose_first_answer(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        response = route.fetch()  # the server books it...
        if len(keys) == 1:
            assert response.status == 201
            route.abort("connectionreset")  # ...and the answer is lost on the way back
        else:
            route.fulfill(response=response)

    page.route("**/api/ticketing/reservations", lose_first_answer)
    page.get_by_role("button", name="Confirm reservation").dblclick()
    expect(page.get_by_role("heading", name="Reservation confirmed")).to_be_visible()
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert keys[0]
    page.get_by_role("link", name="My tickets").click()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(1)  # booked once


def test_problem_detail_is_shown_before_booking_opens(new_page: Any, catalog: Catalog) -> None:
    show = catalog.session(opens_in_s=600)
    page: Page = new_page()
    page.goto(f"/performances/{show['performance_id']}")
    expect(page.get_by_text(re.compile(r"opens in 9:5\d"))).to_be_visible()  # counting down
    page.get_by_role("link", name=re.compile("^Book")).click()
    sign_in(page, "Eager")
    expect(page.get_by_text(re.compile(r"Booking opens in 9:5\d"))).to_be_visible()
    page.get_by_role("button", name="Join the queue").click()
    expect(page.get_by_role("alert")).to_have_text("booking for this session has not opened yet")
