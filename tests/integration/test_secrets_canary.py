"""Secrets canary: a camera whose RTSP URL carries a unique password
goes through every flow; the password shows up in no log line, metric, API response,
container label or name, CLI output or debug-bundle file.

The pusher container's environment is the one place the URL must be (the pusher pulls the
camera with it); it is checked to be there, so the test proves the canary really flowed.
"""

from __future__ import annotations

import asyncio
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.harness.docker import container_env, pusher_containers
from tests.harness.http import ADMIN_HEADERS, admit, put_camera
from tests.harness.livekit import NewStack, pusher_env
from tests.harness.service import cli_run
from tests.harness.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]

CLI_COMMANDS = (
    ("status",),
    ("status", "--json"),
    ("cameras",),
    ("cameras", "--json"),
    ("reservations", "--json"),
    ("reconcile", "--dry-run", "--json"),
    ("recount", "--json"),
)


async def test_an_rtsp_password_never_leaves_the_service(
    client: Redis,
    docker_api: Any,
    whip_pusher_image: str,
    new_stack: NewStack,
    tmp_path: Path,
) -> None:
    canary = f"canary{uuid.uuid4().hex}"
    rtsp_url = f"rtsp://operator:{canary}@127.0.0.1:8554/live?auth={canary}x"
    seen: list[tuple[str, str]] = []  # (where, text) of everything that left the service

    async with new_stack(pusher_env(whip_pusher_image)) as s:
        put = await put_camera(s.http, "cam-canary", rtsp_url, name="Canary gate")
        assert put.status_code == 201, put.text
        seen.append(("PUT camera", put.text))
        first = await admit(s.http, "cam-canary")
        second = await admit(s.http, "cam-canary")
        seen.append(("reserve", str(first)))
        s.fake.join(first["token"])

        async def running() -> bool:
            return (
                len(
                    await asyncio.to_thread(
                        pusher_containers, docker_api, "cam-canary", running=True
                    )
                )
                == 1
            )

        await eventually(running, 30, "the canary camera's pusher runs")
        [pusher] = await asyncio.to_thread(
            pusher_containers, docker_api, "cam-canary", running=True
        )
        assert canary in container_env(docker_api, pusher["Id"])["RTSP_URL"], "it flowed"
        inspected = docker_api.api.inspect_container(pusher["Id"])
        seen.append(("container labels", str(inspected["Config"]["Labels"])))
        seen.append(("container name", inspected["Name"]))

        rid = first["reservation_id"]
        for method, path in (
            ("GET", "/api/v1/cameras/cam-canary"),
            ("GET", "/api/v1/cameras"),
            ("GET", "/api/v1/stream/stats"),
            ("POST", f"/api/v1/stream/heartbeat/{rid}"),
            ("GET", "/ready"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
        ):
            response = await s.http.request(method, path, headers=ADMIN_HEADERS)
            assert response.status_code == 200, (path, response.text)
            seen.append((f"{method} {path}", response.text))

        bundle = tmp_path / "bundle.tar.gz"
        commands = [
            *CLI_COMMANDS,
            ("kick", second["reservation_id"]),
            ("debug-bundle", "-o", str(bundle), "--service-log", str(s.service.log_path)),
            ("reset-camera", "cam-canary", "--json"),
        ]
        for command in commands:
            done = await asyncio.to_thread(cli_run, s.service, *command)
            assert done.returncode == 0, (command, done.stderr)
            seen.append((" ".join(command), done.stdout + done.stderr))
        released = await s.http.delete(f"/api/v1/stream/release/{rid}", headers=ADMIN_HEADERS)
        seen.append(("release", released.text))
        seen.append(("metrics after", (await s.http.get("/metrics")).text))

    seen.append(("service log", s.service.log_path.read_text()))
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        assert "cctv-debug/logs/service.log" in names and "cctv-debug/cameras.json" in names
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            seen.append((f"bundle {member.name}", extracted.read().decode()))

    leaks = [where for where, text in seen if canary in text]
    assert leaks == [], f"the RTSP password leaked into: {leaks}"
    bundled_cameras = dict(seen)["bundle cctv-debug/cameras.json"]
    assert "rtsp://***@127.0.0.1:8554/live" in bundled_cameras
