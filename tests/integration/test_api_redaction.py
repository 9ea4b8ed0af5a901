"""Redaction against a real ``serve`` process and real Valkey.

Cameras are registered over the API with every way recorders carry credentials: a userinfo
password holding unencoded ``/ # ? @``, and ``user=``/``password=``-style parameters in the
path (``;k=v``, ``&k=v``) or the query. Each password is made of canary words found nowhere
else; none of them may show in the API, the service log, the on-call CLI or the debug bundle.
No Docker: pushers are off and the engine address leads nowhere.
"""

from __future__ import annotations

import asyncio
import json
import tarfile
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from orchestrator.store.cameras import CameraRegistry
from tests.harness.http import ADMIN_HEADERS, put_camera
from tests.harness.service import NewService, cli_run

ISSUE_URL = "rtsp://admin:p@ss/w#rd?x@10.0.0.5:554/Streaming/Channels/101"

# camera id -> (RTSP URL, what the API shows of it)
CAMERAS: dict[str, tuple[str, str]] = {
    "cam-issue": (ISSUE_URL, "rtsp://***@10.0.0.5:554/Streaming/Channels/101"),
    "cam-userinfo": (
        "rtsp://admin:Kq7zx/Wv9xa#Rt4yb?Mp2nc@Jh8dq@10.0.0.6:554/Streaming/Channels/101",
        "rtsp://***@10.0.0.6:554/Streaming/Channels/101",
    ),
    "cam-dahua": (
        "rtsp://10.0.0.7/cam/realmonitor;user=Ub5adm;password=Pq3zr/Gh7km#Lm2wq?;channel=1",
        "rtsp://10.0.0.7/cam/realmonitor;user=***;password=***;channel=1",
    ),
    "cam-query": (
        "rtsp://10.0.0.8/axis-media/media.amp?user=Ua6rt&password=Pw4xk9Tz&resolution=1280x720",
        "rtsp://10.0.0.8/axis-media/media.amp",
    ),
    "cam-xm": (
        "rtsp://10.0.0.9:554/user=Ua7rt&password=Pw5yk8Tz&channel=1&stream=0.sdp?real_stream",
        "rtsp://10.0.0.9:554/user=***&password=***&channel=1&stream=0.sdp",
    ),
    "cam-keys": (
        "rtsp://10.0.0.10/live;USERNAME=Kk1ua;Pwd=Kk2pw;passwd=Kk3pd;pass=Kk4ps;TOKEN=Kk5tk;"
        "auth=Kk6au;key=Kk7ky;secret=Kk8sc;channel=2?User=Kk9uq&PASSWORD=Kk0pq",
        "rtsp://10.0.0.10/live;USERNAME=***;Pwd=***;passwd=***;pass=***;TOKEN=***;"
        "auth=***;key=***;secret=***;channel=2",
    ),
    "cam-at-in-param": ("rtsp://10.0.0.11/cam;password=At6qp@Rv2ls;channel=1", "rtsp://***"),
    "cam-broken": ("rtsp://admin:Bk3nq/Zx9wp@", "rtsp://***@"),
    "cam-no-host": ("rtsp://admin:Bk4nq/Zx8wp", "rtsp://***"),
}
CANARIES = [
    *("Kq7zx", "Wv9xa", "Rt4yb", "Mp2nc", "Jh8dq", "Ub5adm", "Pq3zr", "Gh7km", "Lm2wq"),
    *("Ua6rt", "Pw4xk9Tz", "Ua7rt", "Pw5yk8Tz", "At6qp", "Rv2ls", "Bk3nq", "Zx9wp"),
    *("Bk4nq", "Zx8wp", "Kk1ua", "Kk2pw", "Kk3pd", "Kk4ps", "Kk5tk", "Kk6au", "Kk7ky"),
    *("Kk8sc", "Kk9uq", "Kk0pq"),
]
ISSUE_PIECES = ["p@ss", "w#rd", "rd?x", "ss/w", "admin:"]


def leaks(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (where, secret)
        for where, text in seen
        for secret in (*CANARIES, *ISSUE_PIECES)
        if secret in text
    ]


async def test_no_part_of_any_camera_password_shows_anywhere(
    client: Redis, new_service: NewService, tmp_path: Path
) -> None:
    service = new_service("redaction", DOCKER_HOST="unix:///nonexistent/docker.sock")
    seen: list[tuple[str, str]] = []
    bundle = tmp_path / "bundle.tar.gz"
    async with service:
        http = service.http
        for camera_id, (url, shown) in CAMERAS.items():
            put = await put_camera(http, camera_id, url, name=f"Gate {camera_id}")
            assert put.status_code == 201, (camera_id, put.text)  # the schema accepts it
            assert put.json()["rtsp_url_redacted"] == shown, camera_id
            seen.append((f"PUT {camera_id}", put.text))
            one = await http.get(f"/api/v1/cameras/{camera_id}", headers=ADMIN_HEADERS)
            assert one.json()["rtsp_url_redacted"] == shown, camera_id
            seen.append((f"GET {camera_id}", one.text))
        listing = await http.get("/api/v1/cameras", headers=ADMIN_HEADERS)
        assert {c["camera_id"]: c["rtsp_url_redacted"] for c in listing.json()["cameras"]} == {
            camera_id: shown for camera_id, (_, shown) in CAMERAS.items()
        }
        seen.append(("GET /api/v1/cameras", listing.text))
        for path in ("/api/v1/stream/stats", "/metrics", "/openapi.json"):
            seen.append((path, (await http.get(path, headers=ADMIN_HEADERS)).text))

        registry = CameraRegistry(client)
        for camera_id, (url, _) in CAMERAS.items():
            stored = await registry.get(camera_id)
            assert stored is not None and stored.rtsp_url == url, "stored whole: the canary flowed"

        cameras = await asyncio.to_thread(cli_run, service, "cameras", "--json")
        assert cameras.returncode == 0, cameras.stderr
        rows: list[dict[str, Any]] = json.loads(cameras.stdout)
        assert {r["camera_id"]: r["rtsp_url"] for r in rows} == {
            camera_id: shown for camera_id, (_, shown) in CAMERAS.items()
        }
        for command in (
            ("cameras",),
            ("cameras", "--json"),
            ("status", "--json"),
            ("debug-bundle", "-o", str(bundle), "--service-log", str(service.log_path)),
        ):
            done = await asyncio.to_thread(cli_run, service, *command)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            seen.append((" ".join(command), done.stdout + done.stderr))

    seen.append(("service log", service.log_path.read_text()))
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            seen.append((f"bundle {member.name}", extracted.read().decode()))
    assert "bundle cctv-debug/cameras.json" in dict(seen)
    assert leaks(seen) == []
