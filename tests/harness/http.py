"""The REST API as the tests call it, over any ``httpx.AsyncClient`` (in-process or real HTTP)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness.constants import ADMIN_KEY, USER


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN_HEADERS = auth(ADMIN_KEY)


async def reserve(
    http: httpx.AsyncClient,
    camera_id: str,
    source: str = "METRO",
    *,
    key: str = ADMIN_KEY,
    user: str = USER,
) -> httpx.Response:
    """POST /stream/reserve as ``key``; the answer, whatever it is."""
    body = {"camera_id": camera_id, "user_id": user, "source": source}
    return await http.post("/api/v1/stream/reserve", json=body, headers=auth(key))


async def admit(
    http: httpx.AsyncClient, camera_id: str, source: str = "METRO", **as_who: str
) -> dict[str, Any]:
    """A reserve that must be admitted (201); its body. ``as_who``: :func:`reserve`'s ``key``
    and ``user``."""
    response = await reserve(http, camera_id, source, **as_who)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def release(http: httpx.AsyncClient, reservation_id: str, *, key: str = ADMIN_KEY) -> None:
    response = await http.delete(f"/api/v1/stream/release/{reservation_id}", headers=auth(key))
    assert response.status_code == 200, response.text


async def put_camera(
    http: httpx.AsyncClient, camera_id: str, rtsp_url: str, *, name: str = "", enabled: bool = True
) -> httpx.Response:
    """PUT /cameras/{camera_id} as admin (``name`` defaults to ``Camera <id>``)."""
    body = {"name": name or f"Camera {camera_id}", "rtsp_url": rtsp_url, "enabled": enabled}
    return await http.put(f"/api/v1/cameras/{camera_id}", json=body, headers=ADMIN_HEADERS)


async def stats(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/v1/stream/stats", headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    return dict(response.json())


# What stats show of a camera they do not list: nobody reserved, watched or started it.
UNLISTED_CAMERA = {
    "viewer_count": 0,
    "reserved_count": 0,
    "publisher_connected": False,
    "pusher_state": "IDLE",
}


async def camera_stats(http: httpx.AsyncClient, camera_id: str) -> dict[str, Any]:
    """The camera's entry of GET /stream/stats (:data:`UNLISTED_CAMERA` when not listed)."""
    for camera in (await stats(http))["camera_stats"]:
        if camera["camera_id"] == camera_id:
            return dict(camera)
    return dict(UNLISTED_CAMERA)
