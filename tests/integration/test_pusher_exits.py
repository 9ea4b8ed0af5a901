"""The pusher program's contract with the orchestrator: how each failure ends the process.

The program runs as a plain process inside the lab network (the image is exercised by
``test_media_path.py``): exit 0 after deleting its WHIP session on SIGTERM, 1 when the camera
fails, 3 when the WHIP endpoint does, and never a secret in its log lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.harness.constants import REPO_ROOT
from tests.harness.waiting import eventually
from tests.media.lab import LAB_ADDRESS
from tests.media.rig import MediaRig

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]

STREAM_KEY = "stream-key-s3cr3t"
EXIT_WITHIN_S = 30.0  # liveness bound: every failure below ends the process in a few seconds


class Pusher:
    def __init__(self, rig: MediaRig, **env: str) -> None:
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT / "deploy" / "pusher"),
            "RTSP_URL": rig.camera_url,
            "WHIP_URL": rig.whip_base_url,
            "WHIP_TOKEN": STREAM_KEY,
            "CAMERA_ID": "cam-exits",
            "PUSHER_STATS_INTERVAL_SECONDS": "1",
            **env,
        }
        self.secrets = [rig.password, STREAM_KEY]
        argv = rig.lab.nsenter([sys.executable, "-m", "cctv_pusher"])
        self.proc = subprocess.Popen(argv, env=self.env, stderr=subprocess.PIPE, text=True)

    async def exit_code(self) -> int:
        return await asyncio.to_thread(self.proc.wait, EXIT_WITHIN_S)

    def log(self) -> list[dict[str, Any]]:
        """The log lines of the ended process (after :meth:`stop`)."""
        for secret in self.secrets:
            assert secret not in self.text, "a secret reached the pusher's log"
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        with self.proc.stderr:
            self.text = self.proc.stderr.read()


def events(log: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["event"]: line for line in log}


async def frames(rig: MediaRig, count: int) -> None:
    async def enough() -> bool:
        session = await rig.control.session()
        return session is not None and session["frames"] >= count

    await eventually(enough, 30, f"{count} frames at the receiver")


async def test_sigterm_deletes_the_whip_session_and_exits_0(rig: MediaRig) -> None:
    pusher = Pusher(rig)
    try:
        await frames(rig, 60)  # over 2 s: a stats line was logged
        pusher.proc.send_signal(signal.SIGTERM)
        assert await pusher.exit_code() == 0
    finally:
        pusher.stop()
    session = await rig.control.session()
    assert session is not None and session["deleted_at"] is not None
    log = events(pusher.log())
    assert log["whip_deleted"]["status"] == 200
    assert log["exit"]["reason"] == "stopped"
    assert log["stats"]["fps"] > 0 and log["stats"]["packets"] >= 25


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong-password", "cannot open"),
        ("nothing-listening", "cannot open"),
        ("camera-stalls", "camera"),
        ("camera-goes-down", "camera"),
    ],
)
async def test_a_camera_failure_exits_1(rig: MediaRig, case: str, reason: str) -> None:
    env = {"PUSHER_RTSP_READ_TIMEOUT_SECONDS": "2"}
    if case == "wrong-password":
        env["RTSP_URL"] = rig.camera_url.replace(rig.password, "not-the-password")
    if case == "nothing-listening":
        env["RTSP_URL"] = f"rtsp://{LAB_ADDRESS}:8999/cam"
    pusher = Pusher(rig, **env)
    try:
        if case in ("camera-stalls", "camera-goes-down"):
            await frames(rig, 10)
            assert rig.camera is not None
            if case == "camera-stalls":  # connected, but nothing more arrives
                rig.camera.proc.send_signal(signal.SIGSTOP)
            else:
                await asyncio.to_thread(rig.stop_camera)
        assert await pusher.exit_code() == 1
    finally:
        pusher.stop()
        if case == "camera-stalls" and rig.camera is not None:
            rig.camera.proc.send_signal(signal.SIGCONT)
    log = events(pusher.log())
    assert reason in log["camera_failed"]["reason"], log["camera_failed"]
    assert log["exit"]["reason"] == "camera"
    if case in ("camera-stalls", "camera-goes-down"):
        session = await rig.control.session()
        assert session is not None and session["deleted_at"] is not None, "session left behind"


@pytest.mark.parametrize(
    ("env", "status"),
    [
        ({"WHIP_URL": f"http://{LAB_ADDRESS}:8998/w"}, None),  # nothing listening
        ({"WHIP_TOKEN": ""}, 401),  # the endpoint refuses an offer without a stream key
    ],
)
async def test_a_whip_failure_exits_3(
    rig: MediaRig, env: dict[str, str], status: int | None
) -> None:
    pusher = Pusher(rig, **env)
    try:
        assert await pusher.exit_code() == 3
    finally:
        pusher.stop()
    log = events(pusher.log())
    assert log["whip_failed"]["status"] == status, log["whip_failed"]
    assert log["exit"]["reason"] == "whip"
