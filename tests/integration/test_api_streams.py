"""REST contract for the dashboard: every endpoint and every error code."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from livekit.api import TokenVerifier

from orchestrator.store import keys
from tests.harness.constants import (
    ADMIN_KEY,
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    METRO_KEY,
    POLICE_KEY,
    USER,
)
from tests.harness.http import auth
from tests.harness.in_process import App

RESERVE_FIELDS = {
    "reservation_id", "camera_id", "camera_name", "room_name", "identity", "token",
    "livekit_url", "expires_at", "quality", "source", "current_usage", "limit",
}  # fmt: skip


async def test_reserve_returns_the_contract_and_a_subscribe_only_token(api: App) -> None:
    await api.add_camera("cam-001")
    response = await api.reserve("cam-001", "METRO")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= RESERVE_FIELDS
    rid = body["reservation_id"]
    assert body["identity"] == f"viewer_{rid}"
    assert body["room_name"] == "camera_cam-001"
    assert body["camera_name"] == "Camera cam-001"
    assert (body["current_usage"], body["limit"], body["source"]) == (1, 30, "METRO")
    assert datetime.fromisoformat(body["expires_at"]).timestamp() > 0
    claims = TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(body["token"])
    assert claims.identity == f"viewer_{rid}"
    assert claims.name == USER
    video = claims.video
    assert video is not None
    assert video.room_join is True and video.room == "camera_cam-001"
    assert video.can_subscribe is True
    assert video.can_publish is False and video.can_publish_data is False
    assert not video.room_admin and not video.room_create and not video.ingress_admin
    assert not video.can_publish_sources


async def test_each_viewer_gets_a_unique_identity(api: App) -> None:
    await api.add_camera("cam-001")
    identities = {(await api.reserve("cam-001", "METRO")).json()["identity"] for _ in range(5)}
    assert len(identities) == 5


async def test_heartbeat_renews_and_refreshes_a_token_near_expiry(api: App) -> None:
    await api.add_camera("cam-001")
    rid = (await api.reserve("cam-001", "METRO")).json()["reservation_id"]
    response = await api.http.post(f"/api/v1/stream/heartbeat/{rid}", headers=auth(ADMIN_KEY))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["expires_at"]
    assert body["token"] is None  # a 10-minute token is far from expiry
    store = api.services.store
    store.policy = replace(store.policy, token_refresh_ms=store.policy.token_ttl_ms)
    response = await api.http.post(f"/api/v1/stream/heartbeat/{rid}", headers=auth(ADMIN_KEY))
    fresh = response.json()
    assert fresh["token"] and fresh["token_expires_at"]
    claims = TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(fresh["token"])
    assert claims.identity == f"viewer_{rid}" and claims.name == USER
    assert claims.video is not None and claims.video.can_publish is False


async def test_heartbeat_of_unknown_reservation_is_404(api: App) -> None:
    response = await api.http.post("/api/v1/stream/heartbeat/" + "A" * 22, headers=auth(ADMIN_KEY))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESERVATION_NOT_FOUND"


async def test_release_is_idempotent(api: App) -> None:
    await api.add_camera("cam-001")
    rid = (await api.reserve("cam-001", "METRO")).json()["reservation_id"]
    for expected in (True, False):
        response = await api.http.delete(f"/api/v1/stream/release/{rid}", headers=auth(ADMIN_KEY))
        assert response.status_code == 200
        assert response.json() == {"status": "released", "released": expected}
    stats = (await api.http.get("/api/v1/stream/stats")).json()
    assert stats["source_stats"]["METRO"]["current"] == 0


async def test_stats_report_sources_and_cameras(api: App) -> None:
    await api.add_camera("cam-001")
    await api.add_camera("cam-002")
    for camera_id, source in [("cam-001", "METRO"), ("cam-001", "METRO"), ("cam-002", "BUS")]:
        assert (await api.reserve(camera_id, source)).status_code == 201
    stats = (await api.http.get("/api/v1/stream/stats")).json()
    assert stats["active_streams"] == 2 and stats["total_reserved"] == 3
    metro = stats["source_stats"]["METRO"]
    assert metro == {
        "source": "METRO", "current": 2, "limit": 30, "usage_percent": 6.7, "active_cameras": 1
    }  # fmt: skip
    cameras = {c["camera_id"]: c for c in stats["camera_stats"]}
    assert cameras["cam-001"]["reserved_count"] == 2
    assert cameras["cam-001"]["camera_name"] == "Camera cam-001"
    assert cameras["cam-002"]["reserved_count"] == 1 and cameras["cam-002"]["source"] == "BUS"
    assert cameras["cam-001"]["active_since"]
    assert stats["timestamp"]


async def test_quota_exhaustion_is_429_with_retry_after_and_both_languages(api: App) -> None:
    await api.add_camera("cam-001")
    await api.services.store.set_limit("BUS", 1)
    assert (await api.reserve("cam-001", "BUS")).status_code == 201
    response = await api.reserve("cam-001", "BUS")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == "AGENCY_LIMIT_EXCEEDED"
    assert (error["source"], error["current"], error["limit"]) == ("BUS", 1, 1)
    assert error["message_en"] and error["message_ar"]
    assert any("\u0600" <= ch <= "\u06ff" for ch in error["message_ar"])


async def test_unknown_and_disabled_cameras(api: App) -> None:
    await api.add_camera("cam-off", enabled=False)
    missing = await api.reserve("cam-missing", "METRO")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "CAMERA_NOT_FOUND"
    disabled = await api.reserve("cam-off", "METRO")
    assert disabled.status_code == 409
    assert disabled.json()["error"]["code"] == "CAMERA_DISABLED"


async def test_validation_errors_are_422_with_a_stable_code(api: App) -> None:
    bad_bodies = [
        {"camera_id": "cam/../etc", "user_id": "u", "source": "METRO"},
        {"camera_id": "x" * 65, "user_id": "u", "source": "METRO"},
        {"camera_id": "cam-1", "user_id": "u", "source": "METRO POLICE"},
        {"camera_id": "cam-1", "source": "METRO"},
    ]
    for body in bad_bodies:
        response = await api.http.post("/api/v1/stream/reserve", json=body, headers=auth(ADMIN_KEY))
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    response = await api.http.post(
        "/api/v1/stream/reserve",
        content=b"{not json",
        headers={**auth(ADMIN_KEY), "content-type": "application/json"},
    )
    assert response.status_code == 422
    bad_id = await api.http.post("/api/v1/stream/heartbeat/short", headers=auth(ADMIN_KEY))
    assert bad_id.status_code == 422


async def test_missing_or_unknown_key_is_401(api: App) -> None:
    body = {"camera_id": "cam-1", "user_id": "u", "source": "METRO"}
    for headers in ({}, auth("not-a-key"), {"Authorization": "Basic abc"}):
        response = await api.http.post("/api/v1/stream/reserve", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_cross_tenant_access_is_refused(api: App) -> None:
    await api.add_camera("cam-001")
    assert (await api.reserve("cam-001", "DUBAI_POLICE", METRO_KEY)).status_code == 403
    police = (await api.reserve("cam-001", "DUBAI_POLICE", POLICE_KEY)).json()
    rid = police["reservation_id"]
    # Another agency's reservation answers exactly like one that does not exist (no owner named).
    heartbeat = await api.http.post(f"/api/v1/stream/heartbeat/{rid}", headers=auth(METRO_KEY))
    assert heartbeat.status_code == 404
    assert heartbeat.json()["error"]["code"] == "RESERVATION_NOT_FOUND"
    assert "POLICE" not in heartbeat.text
    release = await api.http.delete(f"/api/v1/stream/release/{rid}", headers=auth(METRO_KEY))
    assert (release.status_code, release.json()["released"]) == (200, False)
    assert await api.services.client.exists(keys.reservation(rid))
    own = await api.http.delete(f"/api/v1/stream/release/{rid}", headers=auth(POLICE_KEY))
    assert own.json()["released"] is True


async def test_viewer_keys_cannot_use_admin_endpoints(api: App) -> None:
    body = {"name": "x", "rtsp_url": "rtsp://127.0.0.1/x"}
    calls = [
        api.http.get("/api/v1/cameras", headers=auth(METRO_KEY)),
        api.http.put("/api/v1/cameras/cam-9", json=body, headers=auth(METRO_KEY)),
        api.http.delete("/api/v1/cameras/cam-9", headers=auth(METRO_KEY)),
        api.http.put("/api/v1/limits/METRO", json={"limit": 99}, headers=auth(METRO_KEY)),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "FORBIDDEN"
