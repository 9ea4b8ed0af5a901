"""The pusher program's contract with the orchestrator: how each failure ends the process.

The program runs as a plain process inside the lab network (the image is exercised by
``test_media_path.py``), once per engine (FFmpeg's WHIP muxer, aiortc): exit 0 after deleting
its WHIP session on SIGTERM, 1 when the camera fails, 3 when the WHIP endpoint does (refused,
401 or hanging), and never a secret in its log lines. Then what only the FFmpeg engine needs:
a High-profile offer LiveKit's bypass takes, and liveness without consent answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
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
    def __init__(self, rig: MediaRig, pusher_engine: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT / "deploy" / "pusher"),
            "RTSP_URL": rig.camera_url,
            "WHIP_URL": rig.whip_base_url,
            "WHIP_TOKEN": STREAM_KEY,
            "CAMERA_ID": "cam-exits",
            "PUSHER_STATS_INTERVAL_SECONDS": "1",
            "PUSHER_ENGINE": pusher_engine,
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


async def test_sigterm_deletes_the_whip_session_and_exits_0(
    rig: MediaRig, pusher_engine: str
) -> None:
    pusher = Pusher(rig, pusher_engine)
    try:
        await frames(rig, 60)  # over 2 s: a stats line was logged
        pusher.proc.send_signal(signal.SIGTERM)
        assert await pusher.exit_code() == 0
    finally:
        pusher.stop()
    session = await rig.control.session()
    assert session is not None and session["deleted_at"] is not None
    log = events(pusher.log())
    # FFmpeg's muxer does not report the DELETE's status; the receiver saw the DELETE above.
    assert log["whip_deleted"]["status"] == (200 if pusher_engine == "aiortc" else None)
    assert log["pipeline"]["engine"] == pusher_engine
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
async def test_a_camera_failure_exits_1(
    rig: MediaRig, pusher_engine: str, case: str, reason: str
) -> None:
    env = {"PUSHER_RTSP_READ_TIMEOUT_SECONDS": "2"}
    if case == "wrong-password":
        env["RTSP_URL"] = rig.camera_url.replace(rig.password, "not-the-password")
    if case == "nothing-listening":
        env["RTSP_URL"] = f"rtsp://{LAB_ADDRESS}:8999/cam"
    pusher = Pusher(rig, pusher_engine, **env)
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
    rig: MediaRig, pusher_engine: str, env: dict[str, str], status: int | None
) -> None:
    pusher = Pusher(rig, pusher_engine, **env)
    try:
        assert await pusher.exit_code() == 3
    finally:
        pusher.stop()
    log = events(pusher.log())
    assert log["whip_failed"]["status"] == status, log["whip_failed"]
    assert log["exit"]["reason"] == "whip"


async def test_a_hanging_whip_endpoint_ends_in_exit_3_within_the_bound(
    rig: MediaRig, pusher_engine: str
) -> None:
    """The endpoint accepts the connection and never answers: no hang, no stray status."""
    url = await asyncio.to_thread(rig.silent_endpoint, 8997)
    timeouts = {"PUSHER_WHIP_TIMEOUT_SECONDS": "2", "PUSHER_ICE_TIMEOUT_SECONDS": "2"}
    pusher = Pusher(rig, pusher_engine, WHIP_URL=url, **timeouts)
    started = time.monotonic()
    try:
        assert await pusher.exit_code() == 3  # within EXIT_WITHIN_S, or TimeoutExpired
    finally:
        pusher.stop()
    print(f"{pusher_engine}: exit 3 after {time.monotonic() - started:.1f} s")
    log = events(pusher.log())
    assert log["exit"] == {**log["exit"], "code": 3, "reason": "whip"}
    assert log["whip_failed"]["level"] == "error"


async def test_an_h264_high_profile_offer_from_the_muxer_is_taken_as_livekit_would(
    rig: MediaRig,
) -> None:
    """FFmpeg's muxer offers the camera's real profile-level-id (High: 64xxxx). LiveKit's
    bypass matches H.264 by packetization mode and the profile's first two bytes only against
    its 42001f... and falls back to the MIME type; the receiver applies the same rule
    (``tests/media/livekit_codecs.py``) and takes it."""
    await asyncio.to_thread(rig.stop_camera)
    rig.profile = "high"
    await asyncio.to_thread(rig.start_camera)
    pusher = Pusher(rig, "ffmpeg")
    try:
        await frames(rig, 25)
        pusher.proc.send_signal(signal.SIGTERM)
        assert await pusher.exit_code() == 0
    finally:
        pusher.stop()
    session = await rig.control.session()
    assert session is not None
    assert [p[:2] for p in session["offer_profiles"]] == ["64"], session["offer_profiles"]
    assert session["pattern_frames"] == session["checked_frames"] > 0
    assert events(pusher.log())["pipeline"]["engine"] == "ffmpeg"


async def test_strict_consent_drops_a_muxer_session_that_pion_liveness_keeps(
    rig: MediaRig,
) -> None:
    """FFmpeg's muxer answers ICE consent checks only during its handshake. aioice's strict
    RFC 7675 consent therefore drops its session, and the pusher exits 3; Pion's liveness
    (any inbound packet, as in LiveKit's ingress) keeps it, and so does strict consent for
    the aiortc engine, which answers the checks. Intervals are scaled to a fifth (consent
    checks every 1 s, 6 misses; Pion: silence of 6 s), so either verdict comes in seconds.
    If this test starts failing, the muxer's consent behaviour changed: re-check
    ``tests/media/ice_liveness.py`` and the pusher README."""
    strict_url, strict = await asyncio.to_thread(rig.extra_receiver, "strict", 8081, "consent", 0.2)
    pion_url, pion = await asyncio.to_thread(rig.extra_receiver, "pion", 8082, "pion", 0.2)
    muxer_strict = Pusher(rig, "ffmpeg", WHIP_URL=strict_url)
    muxer_pion = Pusher(rig, "ffmpeg", WHIP_URL=pion_url)
    aiortc_strict = Pusher(rig, "aiortc", WHIP_URL=strict_url)
    try:
        assert await muxer_strict.exit_code() == 3
        pion_frames = (await pion.stats())["sessions"][0]["frames"]
        await asyncio.sleep(2.0)
        assert muxer_pion.proc.poll() is None and aiortc_strict.proc.poll() is None
        [alive] = (await pion.stats())["sessions"]
        assert alive["track_ended_at"] is None and alive["frames"] > pion_frames, alive
        by_token = (await strict.stats())["sessions"]
        ended = [s for s in by_token if s["track_ended_at"] is not None]
        kept = [s for s in by_token if s["track_ended_at"] is None]
        assert len(ended) == 1 and len(kept) == 1, by_token
        # The dropped session is the muxer's, at about six missed 1 s checks after connecting.
        assert ended[0]["track_ended_at"] - ended[0]["connected_at"] < 30
    finally:
        for pusher in (muxer_strict, muxer_pion, aiortc_strict):
            pusher.stop()
    assert events(muxer_strict.log())["whip_failed"]["level"] == "error"
