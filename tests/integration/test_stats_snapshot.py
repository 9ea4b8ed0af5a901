"""``GET /api/v1/stream/stats`` from the shared snapshot (issue 20), against real Valkey: the
hand-written body is the contract's model, pollers share one read per max age, ``ETag`` and
``If-None-Match`` give 304 until the data changes, the age is told, and one camera's stats come
alone (``/stats/{camera_id}`` and ``?camera_id=``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from orchestrator.api.schemas import CameraStatsResponse, StatsResponse
from orchestrator.errors import StoreUnavailable
from orchestrator.store.embedded import EmbeddedValkey
from tests.harness.in_process import App, app_settings, open_app
from tests.harness.waiting import eventually

MAX_AGE_S = 1.0
STATS = "/api/v1/stream/stats"


@pytest.fixture
async def cached(valkey_url: str, client: object) -> AsyncIterator[App]:
    """The app with the shared snapshot on (the harness reads for each request otherwise)."""
    async with open_app(app_settings(valkey_url, stats_max_age_seconds=MAX_AGE_S)) as app:
        yield app


def reads(app: App) -> float:
    """Snapshots this replica read from Valkey, from its own metric."""
    count = app.services.metrics_registry.get_sample_value("cctv_stats_read_seconds_count")
    return count or 0.0


async def test_the_body_is_the_contract_and_agrees_with_a_fresh_read(api: App) -> None:
    for camera in ("cam-s1", "cam-s2", "cam-s3"):
        await api.add_camera(camera)
    for camera, source in [("cam-s1", "METRO"), ("cam-s1", "BUS"), ("cam-s2", "METRO")]:
        assert (await api.reserve(camera, source)).status_code == 201
    response = await api.http.get(STATS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = StatsResponse.model_validate_json(response.content)  # every field, every type
    fresh = await api.services.streams.stats()
    assert body.total_reserved == fresh.total_current == 3
    assert body.active_streams == 2 and body.total.limit == fresh.total_limit
    by_camera = {c.camera_id: c for c in body.camera_stats}
    assert set(by_camera) == {"cam-s1", "cam-s2"}
    assert by_camera["cam-s1"].viewers_by_source == {"METRO": 1, "BUS": 1}
    assert by_camera["cam-s1"].camera_name == "Camera cam-s1"
    assert body.source_stats["METRO"].current == 2
    assert body.source_stats["METRO"].active_cameras == 2
    assert body.source_stats["METRO"].usage_percent == round(100 * 2 / 30, 1)


async def test_concurrent_pollers_share_one_read_per_max_age(cached: App) -> None:
    await cached.add_camera("cam-poll")
    assert (await cached.reserve("cam-poll", "METRO")).status_code == 201
    await cached.http.get(STATS)  # a snapshot now: the pollers below find it fresh
    before = reads(cached)
    answers = await asyncio.gather(*(cached.http.get(STATS) for _ in range(40)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.headers["etag"] for a in answers}) == 1
    assert reads(cached) - before <= 1, "each poller read Valkey itself"


async def test_etag_gives_304_until_the_data_changes_and_the_age_is_told(cached: App) -> None:
    await cached.add_camera("cam-etag")
    first = await cached.http.get(STATS)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    assert 0 <= int(first.headers["age"]) <= MAX_AGE_S
    assert 0 <= first.json()["snapshot_age_ms"] <= MAX_AGE_S * 1000 + 500

    async def not_modified() -> bool:  # past the max age: a new snapshot, the same data
        again = await cached.http.get(STATS, headers={"If-None-Match": etag})
        return again.status_code == 304 and again.content == b"" and reads(cached) >= 2

    await eventually(not_modified, 10, "304 for a new snapshot of the same data")
    listed = await cached.http.get(STATS, headers={"If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304

    assert (await cached.reserve("cam-etag", "METRO")).status_code == 201

    async def changed() -> bool:
        again = await cached.http.get(STATS, headers={"If-None-Match": etag})
        return again.status_code == 200 and again.headers["etag"] != etag

    await eventually(changed, 10, "a new ETag once a reservation changed the data")
    latest = (await cached.http.get(STATS)).json()
    assert latest["total_reserved"] == 1


async def test_one_camera_alone_by_path_and_by_query(api: App) -> None:
    await api.add_camera("cam-one")
    await api.add_camera("cam-idle")
    await api.add_camera("cam-other")
    for source in ("METRO", "METRO", "BUS"):
        assert (await api.reserve("cam-one", source)).status_code == 201
    assert (await api.reserve("cam-other", "BUS")).status_code == 201
    by_path = await api.http.get(f"{STATS}/cam-one")
    by_query = await api.http.get(STATS, params={"camera_id": "cam-one"})
    assert by_path.status_code == by_query.status_code == 200
    one = CameraStatsResponse.model_validate_json(by_path.content)
    assert one.camera_id == "cam-one" and one.reserved_count == 3
    assert one.viewers_by_source == {"METRO": 2, "BUS": 1}
    assert by_query.json()["camera_id"] == "cam-one"
    assert by_query.json()["reserved_count"] == 3
    idle = (await api.http.get(f"{STATS}/cam-idle")).json()
    assert idle["reserved_count"] == 0 and idle["pusher_state"] == "IDLE"
    missing = await api.http.get(f"{STATS}/cam-none")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "CAMERA_NOT_FOUND"
    assert (await api.http.get(f"{STATS}/bad|id")).status_code == 422


async def test_the_fast_path_answers_what_the_route_answers(cached: App) -> None:
    """``GET /stats`` with no query is answered by ``api/stats_fast.py``; any query goes to the
    route. Within one snapshot both give the same bytes and headers, the same 304, and the
    request metric counts both under the route's template."""
    await cached.add_camera("cam-fast")
    assert (await cached.reserve("cam-fast", "METRO")).status_code == 201
    fast = await cached.http.get(STATS)
    routed = await cached.http.get(STATS, params={"unused": "1"})
    assert fast.status_code == routed.status_code == 200
    assert fast.headers["etag"] == routed.headers["etag"], "the same data, the same ETag"
    for name in ("content-type", "cache-control", "content-length"):
        assert fast.headers[name] == routed.headers[name], name
    fast_body, routed_body = fast.json(), routed.json()
    assert fast_body.pop("snapshot_age_ms") >= 0 and routed_body.pop("snapshot_age_ms") >= 0
    # On a busy machine the two may come from two snapshots (max age 1 s) of the same data:
    # only their times may differ.
    for body in (fast_body, routed_body):
        assert datetime.fromisoformat(body.pop("timestamp")).tzinfo is not None
    assert fast_body == routed_body
    StatsResponse.model_validate_json(fast.content)
    etag = {"If-None-Match": fast.headers["etag"]}
    assert (await cached.http.get(STATS, headers=etag)).status_code == 304
    assert (await cached.http.get(STATS, headers=etag, params={"x": "1"})).status_code == 304
    registry = cached.services.metrics_registry
    labels = {"method": "GET", "route": STATS, "status": "304"}
    assert registry.get_sample_value("cctv_http_request_duration_seconds_count", labels) == 2


async def test_the_fast_path_leaves_errors_to_the_route(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey")
    url = server.start()
    try:
        async with open_app(app_settings(url, stats_max_age_seconds=0.0)) as app:
            assert (await app.http.get(STATS)).status_code == 200
            registry = app.services.metrics_registry
            assert registry.get_sample_value("cctv_stats_key_tracking") == 1.0
            server.stop()
            down = await app.http.get(STATS)
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == StoreUnavailable("").code
            assert int(down.headers["retry-after"]) >= 1
            assert registry.get_sample_value("cctv_stats_key_tracking") == 0.0
    finally:
        server.stop()
