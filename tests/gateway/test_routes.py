"""The route table and the path guard, without any app."""

from __future__ import annotations

import pytest

from gateway.config import Route, default_routes
from gateway.routes import PathRejected, RouteTable, check_path
from shared.ids import MAX_ID


class TestCheckPath:
    @pytest.mark.parametrize(
        "raw",
        [
            b"/api/../admin",
            b"/api/venues/..",
            b"/api/./venues",
            b"/api/%2e%2e/admin",
            b"/api/%2E%2E/admin",
            b"/api/.%2e/admin",
            b"/api/%2e./admin",
            b"/api/venues%2f..%2fadmin",
            b"/api/venues%2F1",
            b"/api/venues%5c..%5cadmin",
            b"/api/venues\\..\\admin",
            b"/api//admin",
            b"//api/venues",
            b"/api/%252e%252e/admin",
            b"/api/venues%00",
            b"api/venues",
        ],
    )
    def test_rejects_traversal_and_ambiguous_encodings(self, raw: bytes) -> None:
        with pytest.raises(PathRejected):
            check_path(raw)

    @pytest.mark.parametrize(
        "raw",
        [b"/api/venues", b"/api/venues/1", b"/api/performances/", b"/.well-known/x", b"/a%20b"],
    )
    def test_accepts_normal_paths(self, raw: bytes) -> None:
        check_path(raw)


class TestRouteTable:
    table = RouteTable(default_routes())

    @pytest.mark.parametrize(
        ("method", "path", "upstream", "group", "auth", "admission", "session_id"),
        [
            ("GET", b"/api/venues", "api", "browse", False, None, None),
            ("GET", b"/api/sessions/3/rankings", "api", "browse", False, None, None),
            ("POST", b"/api/admin/venues", "api", "admin", False, None, None),
            ("POST", b"/api/auth/guest", "gateway", "auth", False, None, None),
            ("GET", b"/api/queue/5", "gateway", "queue", True, None, None),
            (
                "GET",
                b"/api/ticketing/sessions/7/seats",
                "ticket",
                "ticketing-read",
                True,
                "session",
                7,
            ),
            (
                "POST",
                b"/api/ticketing/sessions/7/holds",
                "ticket",
                "ticketing-write",
                True,
                "session",
                7,
            ),
            (
                "POST",
                b"/api/ticketing/reservations",
                "ticket",
                "ticketing-write",
                True,
                "user",
                None,
            ),
            (
                "GET",
                b"/api/ticketing/reservations/r1",
                "ticket",
                "ticketing-read",
                True,
                None,
                None,
            ),
            ("DELETE", b"/api/ticketing/holds/h1", "ticket", "ticketing-write", True, None, None),
            (
                "GET",
                b"/api/ticketing/me/reservations",
                "ticket",
                "ticketing-read",
                True,
                None,
                None,
            ),
            # Not a digit: the admission template does not match; the plain ticketing prefix
            # does (ticket_server answers 404/422), and it still needs auth.
            (
                "GET",
                b"/api/ticketing/sessions/x/seats",
                "ticket",
                "ticketing-read",
                True,
                None,
                None,
            ),
        ],
    )
    def test_default_table(
        self, method, path, upstream, group, auth, admission, session_id
    ) -> None:
        m = self.table.match(method, path)
        assert m is not None
        assert (m.route.upstream, m.route.group, m.route.auth, m.route.admission) == (
            upstream,
            group,
            auth,
            admission,
        )
        assert m.session_id == session_id
        assert m.upstream_path == path

    def test_id_segments_take_the_shared_bound_s_digits(self) -> None:
        m = self.table.match("GET", b"/api/ticketing/sessions/%d/seats" % MAX_ID)
        assert m is not None
        assert (m.route.admission, m.session_id) == ("session", MAX_ID)
        # One digit more is no id: the plain ticketing prefix takes it (ticket_server → 422).
        m = self.table.match("GET", b"/api/ticketing/sessions/%d/seats" % (MAX_ID * 10))
        assert m is not None
        assert (m.route.admission, m.session_id) == (None, None)

    def test_unknown_paths_do_not_match(self) -> None:
        assert self.table.match("GET", b"/other") is None
        assert self.table.match("GET", b"/apix/venues") is None

    def test_prefix_without_trailing_slash_stays_in_its_prefix(self) -> None:
        m = self.table.match("GET", b"/api/ticketing")
        assert m is not None
        assert m.route.upstream == "ticket"
        assert m.upstream_path == b"/api/ticketing"

    def test_rewrite(self) -> None:
        table = RouteTable(
            [Route(path="/api/catalog/", upstream="api", group="browse", rewrite="/v2/")]
        )
        m = table.match("GET", b"/api/catalog/venues/1")
        assert m is not None
        assert m.upstream_path == b"/v2/venues/1"
        m = table.match("GET", b"/api/catalog")
        assert m is not None
        assert m.upstream_path == b"/v2"

    def test_method_filter(self) -> None:
        table = RouteTable(
            [Route(path="/api/x/", upstream="api", group="r", methods=frozenset({"GET"}))]
        )
        assert table.match("GET", b"/api/x/1") is not None
        assert table.match("POST", b"/api/x/1") is None
