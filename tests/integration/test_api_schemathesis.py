"""Property-based API test: schemathesis against the live app's own OpenAPI.

At least 300 generated cases over real HTTP; no 5xx; every response conforms to the schema;
every secured operation refuses the same call without a key. The body guard's answers (issue
15) are sent to every operation and must be documented there and conform too: 413 for a body
over the cap, 422 ``INVALID_BODY`` for one that is not JSON, 401 before the body without a key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from orchestrator.api.app import create_app
from orchestrator.api.route_policy import flat_routes, needs_key
from orchestrator.config import Settings
from orchestrator.store.embedded import EmbeddedValkey
from tests.harness.constants import SAMPLE_IDS
from tests.harness.http import ADMIN_HEADERS
from tests.harness.in_process import app_settings, served_app

MIN_CASES = 300


@pytest.fixture
def live_url(valkey_server: EmbeddedValkey) -> Iterator[str]:
    with served_app(app_settings(valkey_server.url)) as url:
        yield url


def test_generated_requests_conform_and_never_fail(live_url: str, client: object) -> None:
    # A camera to hit, so generated reserves also take the admitted path.
    admin = ADMIN_HEADERS
    body = {"name": "Fuzz", "rtsp_url": "rtsp://127.0.0.1/fuzz"}
    assert httpx.put(f"{live_url}/api/v1/cameras/cam-1", json=body, headers=admin).is_success

    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    counts = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here: a bad schema
        counts[operation.label] = fuzz_operation(operation, live_url, admin)
    print("schemathesis cases per operation:", counts)
    assert sum(counts.values()) >= MIN_CASES, f"only {sum(counts.values())} cases ran: {counts}"
    for result in schema.get_all_operations():
        send_hostile_bodies(result.ok(), live_url, admin)  # type: ignore[union-attr]


def send_hostile_bodies(operation: Any, base_url: str, admin: dict[str, str]) -> None:
    """The guard's and the parser's answers are documented and conform (408 is only listed:
    tests/integration/test_api_hostile_input.py makes one)."""
    url = base_url + operation.path.format(**SAMPLE_IDS)
    json_type = {"Content-Type": "application/json"}
    sends = [(413, "BODY_TOO_LARGE", admin, b"[" * 300_000)]  # over every cap (webhook: 256 KiB)
    if "application/json" in operation.definition.raw.get("requestBody", {}).get("content", {}):
        sends.append((422, "INVALID_BODY", admin, b'{"limit": \xff'))
    if operation.definition.raw.get("security"):
        sends.append((401, "UNAUTHORIZED", {}, b"{not json"))
    for status, code, headers, body in sends:
        response = httpx.request(
            operation.method, url, content=body, headers={**json_type, **headers}
        )
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
        assert operation.responses.find_by_status_code(status) is not None, (
            operation.label,
            status,
        )
        operation.validate_response(response)
    assert operation.responses.find_by_status_code(408) is not None, operation.label


def test_keys_come_before_bodies_exactly_where_the_openapi_asks_for_one() -> None:
    app = create_app(Settings())
    keyed = {
        (method, route.path)
        for route in flat_routes(app.routes)
        for method in getattr(route, "methods", None) or ()
        if needs_key(route)
    }
    secured = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert keyed == secured
    writes = {(m, p) for p, ops in app.openapi()["paths"].items() for m in ops if m != "get"}
    public_writes = {(m.upper(), p) for m, p in writes} - keyed
    assert public_writes == {("POST", "/api/v1/livekit/webhook")}  # signed instead


def fuzz_operation(operation: Any, base_url: str, admin: dict[str, str]) -> int:
    secured = bool(operation.definition.raw.get("security"))
    ran = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: Any) -> None:
        nonlocal ran
        ran += 1
        case.call_and_validate(base_url=base_url, headers=admin)
        if secured:
            bare = case.call(base_url=base_url, headers={"Authorization": ""})
            assert bare.status_code == 401, (operation.label, bare.status_code)

    check()
    return ran
