"""Camera registry, limits, health, CORS and Valkey outages over HTTP."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest

from orchestrator.store.embedded import EmbeddedValkey
from tests.harness.constants import ADMIN_KEY
from tests.harness.http import auth
from tests.harness.in_process import App, app_settings, open_app

SECRET_URL = "rtsp://admin:S3cr3t-pass@127.0.0.1:554/stream1"


async def test_camera_registry_crud_never_returns_credentials(api: App) -> None:
    body = {"name": "Sheikh Zayed 1", "rtsp_url": SECRET_URL, "enabled": True}
    created = await api.http.put("/api/v1/cameras/cam-001", json=body, headers=auth(ADMIN_KEY))
    assert created.status_code == 201
    replaced = await api.http.put("/api/v1/cameras/cam-001", json=body, headers=auth(ADMIN_KEY))
    assert replaced.status_code == 200
    one = await api.http.get("/api/v1/cameras/cam-001", headers=auth(ADMIN_KEY))
    listing = await api.http.get("/api/v1/cameras", headers=auth(ADMIN_KEY))
    for response in (created, replaced, one, listing):
        assert "S3cr3t-pass" not in response.text and "admin:" not in response.text
    assert one.json()["rtsp_url_redacted"] == "rtsp://***@127.0.0.1:554/stream1"
    assert [c["camera_id"] for c in listing.json()["cameras"]] == ["cam-001"]
    deleted = await api.http.delete("/api/v1/cameras/cam-001", headers=auth(ADMIN_KEY))
    assert deleted.json() == {"status": "deleted"}
    again = await api.http.delete("/api/v1/cameras/cam-001", headers=auth(ADMIN_KEY))
    assert again.status_code == 404 and again.json()["error"]["code"] == "CAMERA_NOT_FOUND"
    missing = await api.http.get("/api/v1/cameras/cam-001", headers=auth(ADMIN_KEY))
    assert missing.status_code == 404


async def test_camera_body_is_validated(api: App) -> None:
    for body in (
        {"name": "x", "rtsp_url": "http://127.0.0.1/x"},
        {"name": "", "rtsp_url": "rtsp://127.0.0.1/x"},
        {"name": "x", "rtsp_url": "rtsp://127.0.0.1/x", "extra": 1},
    ):
        response = await api.http.put("/api/v1/cameras/cam-1", json=body, headers=auth(ADMIN_KEY))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_limits_are_admin_settable_but_never_below_usage(api: App) -> None:
    await api.add_camera("cam-001")
    await api.reserve("cam-001", "METRO")
    await api.reserve("cam-001", "METRO")
    below = await api.http.put("/api/v1/limits/METRO", json={"limit": 1}, headers=auth(ADMIN_KEY))
    assert below.status_code == 409 and below.json()["error"]["code"] == "LIMIT_BELOW_USAGE"
    ok = await api.http.put("/api/v1/limits/METRO", json={"limit": 2}, headers=auth(ADMIN_KEY))
    assert ok.json() == {"source": "METRO", "limit": 2, "previous": None}
    assert (await api.reserve("cam-001", "METRO")).status_code == 429


async def test_health_ready_docs_and_unknown_routes(api: App) -> None:
    assert (await api.http.get("/health")).json() == {"status": "ok"}
    ready = await api.http.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"valkey": "ok", "docker": "ok"}
    metrics = await api.http.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    schema = (await api.http.get("/openapi.json")).json()
    assert "/api/v1/stream/reserve" in schema["paths"]
    assert (await api.http.get("/docs")).status_code == 200
    unknown = await api.http.get("/api/v1/nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "NOT_FOUND"
    wrong = await api.http.get("/api/v1/stream/reserve")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_cors_is_off_unless_origins_are_configured(api: App, valkey_url: str) -> None:
    preflight = {
        "Origin": "https://dashboard.example",
        "Access-Control-Request-Method": "POST",
    }
    off = await api.http.options("/api/v1/stream/reserve", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    config = app_settings(valkey_url, cors_origins=["https://dashboard.example"])
    async with open_app(config) as other:
        on = await other.http.options("/api/v1/stream/reserve", headers=preflight)
        assert on.headers["access-control-allow-origin"] == "https://dashboard.example"
        # A dashboard on another origin revalidates stats with If-None-Match and reads the ETag.
        poll = {**preflight, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "if-none-match"}  # fmt: skip
        allowed = await other.http.options("/api/v1/stream/stats", headers=poll)
        assert allowed.status_code == 200
        assert "if-none-match" in allowed.headers["access-control-allow-headers"].lower()
        got = await other.http.get(
            "/api/v1/stream/stats", headers={"Origin": "https://dashboard.example"}
        )
        assert "etag" in got.headers["access-control-expose-headers"].lower()


async def test_ready_names_an_unreachable_docker_engine(valkey_url: str, client: object) -> None:
    config = app_settings(valkey_url, docker_host="unix:///nonexistent/docker.sock")
    async with open_app(config) as api:
        ready = await api.http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["degraded"] == ["docker"]
        assert (await api.http.get("/health")).status_code == 200


# While Valkey is down, asyncio's unix-socket connect can drop a half-open socket to the GC
# (stdlib/redis-py, not ours); its ResourceWarning must not fail the outage test.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_valkey_outage_answers_503_quickly_and_recovers(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey")
    url = server.start()
    try:
        async with open_app(app_settings(url, sweep_interval_seconds=0.1)) as api:
            await api.add_camera("cam-001")
            assert (await api.reserve("cam-001", "METRO")).status_code == 201
            server.stop()
            started = time.monotonic()
            down = await api.reserve("cam-001", "METRO")
            elapsed = time.monotonic() - started
            assert down.status_code == 503, down.text
            # Bounded, never hanging (socket timeout 0.5 s and one quick retry); a liveness
            # bound that a busy machine keeps, not a speed figure.
            assert elapsed < 10.0, f"503 took {elapsed:.2f}s"
            assert down.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert int(down.headers["Retry-After"]) >= 1
            stats = await api.http.get("/api/v1/stream/stats")
            assert stats.status_code == 503
            ready = await api.http.get("/ready")
            assert ready.status_code == 503 and ready.json()["degraded"] == ["valkey"]
            server.start()
            for _ in range(50):  # the pool reconnects by itself; no restart of the service
                response = await api.reserve("cam-001", "METRO")
                if response.status_code == 201:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 201, response.text
            assert response.json()["current_usage"] == 2  # the lease from before survived
    finally:
        server.stop()
        gc.collect()  # collect that half-open socket now, under this test's filters
