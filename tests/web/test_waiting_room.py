"""The waiting room: live updates over the event stream, polling with backoff when the
stream is cut, and sold out announced through the live region."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Request, Route, expect

from tests.web.a11y import assert_accessible, screenshot
from tests.web.system import ApiUser, Catalog
from tests.web.test_journey import sign_in


def wait_behind_someone(
    new_page: Any, catalog: Catalog, **session: Any
) -> tuple[Any, ApiUser, Page]:
    """A session with one active slot taken by an API user; a browser user joins behind."""
    show = catalog.session(max_active=1, **session)
    first = ApiUser(catalog.url, "Early Bird")
    first.join_until_admitted(show["id"])
    page: Page = new_page()
    page.goto(f"/sessions/{show['id']}")
    sign_in(page, "Waiter")
    # Shown once the page has asked where the user stands (404: not in the queue yet).
    expect(page.get_by_role("button", name="Join the queue")).to_be_visible()
    return show, first, page


def send_one_event(route: Route, session_id: int, status: str, position: int | None) -> None:
    """Answer a request for the queue's stream with one status event; the stream then ends."""
    event = {
        "session_id": session_id, "status": status, "position": position, "ahead": 0,
        "estimated_wait_s": None, "admission_token": None, "admission_expires_at": None,
    }  # fmt: skip
    route.fulfill(
        status=200,
        headers={"content-type": "text/event-stream"},
        body=f"event: status\ndata: {json.dumps(event)}\n\n",
    )


def status_polls(page: Page, session_id: int) -> list[float]:
    """Times of the page's ``GET /api/queue/{id}`` requests from now on."""
    times: list[float] = []
    url = re.compile(rf"/api/queue/{session_id}$")

    def seen(request: Request) -> None:
        if request.method == "GET" and url.search(request.url):
            times.append(time.monotonic())

    page.on("request", seen)
    return times


def test_live_stream_moves_the_waiter_in_without_polling(
    new_page: Any, catalog: Catalog, tmp_path: Path
) -> None:
    show, first, page = wait_behind_someone(new_page, catalog, title="Aurora Live in Seoul")
    ahead = [ApiUser(catalog.url, f"Ahead {i}") for i in range(2)]
    for person in ahead:
        assert person.client.post(f"/api/queue/{show['id']}/join").status_code == 200
    try:
        polls = status_polls(page, show["id"])
        page.get_by_role("button", name="Join the queue").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("in line")
        expect(status).to_contain_text("number 3, with 2 people ahead of you")
        expect(page.get_by_text("Live updates.")).to_be_visible()
        expect(page.get_by_role("button", name="Leave the queue")).to_be_visible()
        assert_accessible(page, "waiting room")
        screenshot(page, "waiting-room", tmp_path)
        for person in ahead:
            person.leave(show["id"])
        expect(status).to_contain_text("number 1")  # live, over the stream
        first.leave(show["id"])  # frees the slot: the stream brings the admission
        expect(status).to_contain_text("your turn")
        expect(page.get_by_role("button", name=re.compile(r"^A-1,"))).to_be_enabled()
        assert polls == [], "the stream alone carried the updates"
    finally:
        first.close()
        for person in ahead:
            person.close()


def test_cut_stream_falls_back_to_polling(new_page: Any, catalog: Catalog) -> None:
    show, first, page = wait_behind_someone(new_page, catalog)
    opened: list[str] = []

    def cut(route: Route) -> None:
        # The first stream delivers one event and ends; every reconnect fails.
        opened.append(route.request.url)
        if len(opened) > 1:
            route.abort("connectionreset")
            return
        send_one_event(route, show["id"], "waiting", position=1)

    try:
        page.route(f"**/api/queue/{show['id']}/events", cut)
        polls = status_polls(page, show["id"])
        page.get_by_role("button", name="Join the queue").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("in line")
        expect(page.get_by_text("Live connection lost")).to_be_visible()
        # Polling keeps the place (it is the heartbeat) and backs off while nothing changes.
        page.wait_for_timeout(4500)
        assert 2 <= len(polls) <= 5, polls
        gaps = [b - a for a, b in itertools_pairwise(polls)]
        assert gaps[-1] > 1.2, gaps  # 1 s, then 1.5 s, 2.25 s … (±20 % jitter)
        expect(status).to_contain_text("in line")
        first.leave(show["id"])
        expect(status).to_contain_text("your turn", timeout=15_000)
        assert len(opened) == 1, "no second stream while polling (it is retried after 30 s)"
    finally:
        first.close()


def itertools_pairwise(items: list[float]) -> list[tuple[float, float]]:
    """Consecutive pairs."""
    return list(zip(items, items[1:], strict=False))


def test_sold_out_is_announced_to_the_waiting(new_page: Any, catalog: Catalog) -> None:
    show, first, page = wait_behind_someone(new_page, catalog, rows=("A",), seats_per_row=2)
    try:
        page.get_by_role("button", name="Join the queue").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("in line")
        hold = first.hold(show["id"], [s["seat_id"] for s in show["seats"]])
        first.confirm(hold["hold_id"])
        expect(status).to_contain_text("Sold out", timeout=15_000)
        expect(page.get_by_role("button", name="Leave the queue")).to_have_count(0)
        assert_accessible(page, "sold out")
    finally:
        first.close()


def test_leave_then_an_expired_place_offers_to_rejoin(new_page: Any, catalog: Catalog) -> None:
    show, first, page = wait_behind_someone(new_page, catalog)
    try:
        page.get_by_role("button", name="Join the queue").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("in line")
        page.reload()  # still in line, without joining again
        expect(status).to_contain_text("in line: number 1")
        expect(page.get_by_text("Live updates.")).to_be_visible()
        page.get_by_role("button", name="Leave the queue").click()
        expect(status).to_have_text("You left the queue.")
        page.reload()  # the server agrees: not in the queue any more
        expect(page.get_by_role("button", name="Join the queue")).to_be_visible()

        # A place lost to a missed heartbeat (the stream reports it as it would).
        def expired(route: Route) -> None:
            send_one_event(route, show["id"], "expired", position=None)

        page.route(f"**/api/queue/{show['id']}/events", expired)
        page.get_by_role("button", name="Join the queue").click()
        expect(status).to_contain_text("Your place expired")
        page.unroute(f"**/api/queue/{show['id']}/events")
        page.get_by_role("button", name="Join the queue").click()  # rejoin
        expect(status).to_contain_text("in line")
    finally:
        first.close()
