"""Property-based fuzzing of the three services' OpenAPI schemas (Schemathesis): whatever
the generated request (valid or not), no answer is a 5xx.

Every operation gets Schemathesis's coverage cases (each boundary of its schema, just inside
and just outside, wrong types, missing fields: how ``admit_per_second: 5e-324`` became a 503
on MariaDB) and then a bounded, derandomized number of fuzzed ones, valid and invalid. The
apps run in-process over ASGI with their lifespans, on the suite's database (SQLite, or
MariaDB when ``BOXOFFICE_TEST_DATABASE_URL`` names one) and Redis, over the demo catalog.
Requests carry valid credentials (the auth checks are tested elsewhere; here bodies and
parameters must get past them), and about half of those naming a catalog object name a real
one (on ticket_server the session open now, with an admission token), so the deep paths run."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from sqlalchemy import Engine, select

from api_server.app import create_app as create_api
from boxoffice.seed import seed_demo
from gateway.app import create_app as create_gateway
from gateway.testing import run_lifespan
from shared.db.models import Performance, PerformanceSession
from shared.tokens import issue_access_token, issue_admission_token, new_user_id
from tests.api_server.conftest import ADMIN
from tests.api_server.conftest import make_settings as api_settings
from tests.fixtures.services import empty_tables
from tests.gateway.queue.conftest import OPEN_SESSION, gateway_settings, make_upstream_mock
from tests.gateway.queue.conftest import SECRET as GATEWAY_SECRET
from tests.ticket_server.conftest import SECRET as TICKET_SECRET
from tests.ticket_server.conftest import make_settings as ticket_settings
from ticket_server.app import create_app as create_ticket

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
# Schemathesis's coverage phase: each schema's boundaries (just inside and outside every
# minimum and maximum, wrong types, missing fields), deterministically; bounded per operation.
MAX_COVERAGE_CASES = 200

# Date-times of this century in any offset (the default strategy's years 0001-9999 are
# refused by validation up front, so hardly any body would get further; the far-off dates
# have tests of their own in tests/api_server/test_admin.py).
schemathesis.openapi.format(
    "date-time",
    st.datetimes(
        min_value=datetime(2001, 1, 1),
        max_value=datetime(2099, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=9)), timezone(-timedelta(hours=5))]
        ),
    ).map(datetime.isoformat),
)
# The SSE stream never ends by itself; its status payloads are the other routes' and its
# 404/401 paths are tested in tests/gateway/queue.
EXCLUDED = {("GET", "/api/queue/{session_id}/events")}
FACTORIES: dict[str, Callable[[], Any]] = {
    "api_server": create_api,
    "ticket_server": create_ticket,
    "gateway": create_gateway,
}


def _documents() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document (built without starting anything), so that every
    operation is a test of its own."""
    return {name: factory().openapi() for name, factory in FACTORIES.items()}


DOCUMENTS = _documents()
OPERATIONS = [
    pytest.param(service, method.upper(), path, id=f"{service} {method.upper()} {path}")
    for service, doc in DOCUMENTS.items()
    for path, item in doc["paths"].items()
    for method in item
    if (method.upper(), path) not in EXCLUDED
]


@pytest.fixture(scope="module")
def demo(database_url: str, db_engine: Engine) -> Iterator[dict[str, int]]:
    """The demo catalog in the suite's database; yields real ids by path parameter name
    (``session_id`` is the session open for booking now)."""
    seed_demo(database_url)
    now = datetime.now(UTC)
    with db_engine.connect() as conn:
        row = conn.execute(
            select(PerformanceSession.id, Performance.id, Performance.venue_id)
            .join(Performance)
            .where(PerformanceSession.booking_opens_at <= now, PerformanceSession.starts_at > now)
            .limit(1)
        ).one()
    try:
        yield {"session_id": row[0], "performance_id": row[1], "venue_id": row[2]}
    finally:
        empty_tables(db_engine)


Send = Callable[[str, Case[Any], dict[str, str]], httpx.Response]


def _with_state(app: Any, state: dict[str, Any]) -> Any:
    """Hand the lifespan's state to every request, as a server does."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["state"] = dict(state)
        await app(scope, receive, send)

    return wrapped


def _request(case: Case[Any], headers: dict[str, str]) -> dict[str, Any]:
    """The case as ``httpx.AsyncClient.request`` arguments (Schemathesis serializes it for
    ``requests``: a raw body is ``data``, cookies a mapping)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params"),
        # As bytes: httpx would refuse a non-ASCII str, and a client can send any byte.
        "headers": {
            name: str(value).encode("utf-8", "surrogatepass")
            for name, value in (kwargs.get("headers") or {}).items()
        },
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, dict):
        request["data"] = data
    elif data is not None:
        request["content"] = data
    cookies = kwargs.get("cookies")
    if cookies:
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        request["headers"]["Cookie"] = cookie.encode("utf-8", "surrogatepass")
    return request


@pytest.fixture(scope="module")
def send(database_url: str, redis_url: str, demo: dict[str, int]) -> Iterator[Send]:
    """Sends a case to one of the three apps, on the suite's database and Redis (the
    gateway's upstreams mocked). The apps run their lifespans on an event loop of their own
    for the whole module; whatever they leave running ends with it."""
    transport = httpx.MockTransport(make_upstream_mock().async_handler)
    apps = {
        "api_server": create_api(api_settings(database_url)),
        "ticket_server": create_ticket(ticket_settings(database_url, redis_url=redis_url)),
        "gateway": create_gateway(gateway_settings(redis_url), transport=transport),
    }
    with start_blocking_portal() as portal, ExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            state = stack.enter_context(portal.wrap_async_context_manager(run_lifespan(app)))
            asgi = httpx.ASGITransport(app=_with_state(app, state))
            client = httpx.AsyncClient(transport=asgi, base_url="http://testserver")
            stack.callback(portal.call, client.aclose)
            clients[name] = client

        def call(service: str, case: Case[Any], headers: dict[str, str]) -> httpx.Response:
            request = _request(case, headers)
            return portal.call(functools.partial(clients[service].request, **request))

        yield call


def _credentials(
    case: Case[Any], service: str, real_ids: dict[str, int], use_real: bool
) -> dict[str, str]:
    """Valid credentials (the admin token, or a fresh guest's bearer token), and for half
    the requests that name a catalog object, a real one (with an admission token for the
    open session on ticket_server), so that the deep paths run too."""
    params = case.path_parameters or {}
    real = {name: real_ids[name] for name in params if name in real_ids}
    if real and use_real:
        params.update(real)
    else:
        real = {}
    if service == "api_server":
        return dict(ADMIN)
    secret = TICKET_SECRET if service == "ticket_server" else GATEWAY_SECRET
    user_id = new_user_id()
    token = issue_access_token(secret=secret, user_id=user_id, nickname="fuzz", ttl_s=600)
    headers = {"Authorization": f"Bearer {token}"}
    if "session_id" in real:
        admission, _ = issue_admission_token(
            secret=secret,
            user_id=user_id,
            session_id=real["session_id"],
            queue_position=1,
            ttl_s=600,
        )
        headers["X-Admission-Token"] = admission
    return headers


@pytest.mark.parametrize(("service", "method", "path"), OPERATIONS)
def test_no_generated_request_gets_a_5xx(
    send: Send, demo: dict[str, int], service: str, method: str, path: str
) -> None:
    operation = schemathesis.openapi.from_dict(DOCUMENTS[service])[path][method]
    # The gateway's session facts come from its mocked api_server, which knows session 1.
    real_ids = {"session_id": OPEN_SESSION} if service == "gateway" else demo
    has_input = bool(operation.path_parameters or operation.query or operation.headers) or bool(
        list(operation.body)
    )

    def check(case: Case[Any], use_real: bool) -> None:
        response = send(service, case, _credentials(case, service, real_ids, use_real))
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: "
            f"{response.text[:500]}\nbody: {case.body!r}"
        )

    schema = operation.schema
    coverage = schema.iter_coverage_cases(
        operation,
        generation_modes=list(EXAMPLES),
        generation_config=schema.config.generation_for(operation=operation),
    )
    for i, case in enumerate(itertools.islice(coverage, MAX_COVERAGE_CASES)):
        check(case, use_real=i % 2 == 0)

    for mode, examples in EXAMPLES.items():
        if mode is GenerationMode.NEGATIVE and not has_input:
            continue  # nothing to get wrong

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy(mode), use_real=st.booleans())
        def no_server_error(case: Case[Any], use_real: bool) -> None:
            check(case, use_real)

        no_server_error()
