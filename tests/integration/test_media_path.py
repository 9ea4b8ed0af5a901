"""The real media path: camera → orchestrator-started pusher container → WHIP.

Everything runs for real: the service process with Valkey and Docker, the LiveKit fake (its
ingress URL points at the decoding WHIP receiver), the pusher image built from
``deploy/pusher``, the RTSP camera simulator. Media stays inside a loopback-only lab network
(``tests/media/lab.py``): the pusher container joins it, the camera and receiver run in it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from orchestrator.runtime import CAMERA_LABEL
from tests.harness.docker import pusher_containers
from tests.harness.http import admit, camera_stats, put_camera, release
from tests.harness.livekit import NewStack, Stack, pusher_env
from tests.harness.metrics import scrape, value
from tests.harness.waiting import eventually
from tests.media.rig import MediaRig, pusher_log

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]

CAMERA = "cam-media"
# Liveness: 100 decoded frames after the reserve (about 5 s on a quiet machine; the figure is
# tests/benchmarks/media_path.py's), with room for a busy one.
FIRST_FRAMES_WITHIN_S = 30.0


def media_env(image: str, rig: MediaRig, **extra: str) -> dict[str, str]:
    return pusher_env(
        image,
        CCTV_PUSHER_NETWORK=rig.lab.network_mode,
        CCTV_PUSHER_STOP_TIMEOUT_SECONDS="5",
        **extra,
    )


async def add_camera(s: Stack, rig: MediaRig) -> None:
    put = await put_camera(s.http, CAMERA, rig.camera_url, name="Lab camera")
    assert put.status_code == 201, put.text


async def frames_after(rig: MediaRig, count: int, sessions_before: int = 0) -> bool:
    """The newest session (past the first ``sessions_before``) decoded ``count`` frames."""
    sessions = (await rig.control.stats())["sessions"][sessions_before:]
    return bool(sessions) and sessions[-1]["frames"] >= count


async def test_a_reserved_camera_reaches_the_whip_endpoint_as_unchanged_h264(
    client: Redis,
    docker_api: Any,
    media_pusher_image: str,
    new_stack: NewStack,
    rig: MediaRig,
    pusher_engine: str,
) -> None:
    env = media_env(media_pusher_image, rig, CCTV_PUSHER_ENGINE=pusher_engine)
    async with new_stack(env, whip_base_url=rig.whip_base_url) as s:
        await add_camera(s, rig)
        reserved_at = time.monotonic()
        lease = await admit(s.http, CAMERA)

        elapsed = await eventually(
            lambda: frames_after(rig, 100), 60, "100 decoded frames", interval=0.1
        )
        assert elapsed <= FIRST_FRAMES_WITHIN_S, f"100 frames took {elapsed:.1f} s"
        stats = await rig.control.stats()
        [session] = stats["sessions"]
        first_frame_s = session["first_frame_at"] - (time.time() - (time.monotonic() - reserved_at))
        print(f"reserve -> first frame {first_frame_s:.2f} s, -> 100 frames {elapsed:.2f} s")

        # It is the camera's test pattern, at the camera's size...
        assert (session["width"], session["height"]) == (640, 360)
        assert session["checked_frames"] >= 20
        assert session["pattern_frames"] == session["checked_frames"], session
        # ...published with the ingress's stream key as the bearer token...
        [ingress] = s.fake.ingresses().values()
        assert session["token"] == ingress.stream_key
        # ...as H.264 only, decoded by the H.264 decoder...
        assert set(session["offer_codecs"]) - {"rtx"} == {"H264"}, session["offer_codecs"]
        assert set(session["answer_codecs"]) - {"rtx"} == {"H264"}
        assert set(stats["decoded_by"]) == {"video/H264"}, stats["decoded_by"]
        # ...and byte for byte the camera's NAL units: nothing was re-encoded on the way.
        received = set(stats["nal_digests"])
        assert len(received) >= 50
        assert received <= rig.camera_digests(), "a NAL unit the camera never sent arrived"

        [pusher] = await asyncio.to_thread(pusher_containers, docker_api, CAMERA, running=True)
        log = await asyncio.to_thread(pusher_log, docker_api, pusher["Id"])
        events = {line["event"]: line for line in log}
        assert events["camera_open"]["codec"] == "h264"
        assert events["pipeline"]["encoder"] is None and events["pipeline"]["decoder"] is None
        assert events["pipeline"]["engine"] == pusher_engine
        assert events["publishing"]["codec"] == "H264"
        text = json.dumps(log)
        assert rig.password not in text and ingress.stream_key not in text

        await release(s.http, lease["reservation_id"])

        async def gone() -> bool:
            return not await asyncio.to_thread(pusher_containers, docker_api, CAMERA)

        await eventually(gone, 30, "the pusher container is removed after release")
        [session] = (await rig.control.stats())["sessions"]
        assert session["deleted_at"] is not None, "the pusher did not DELETE its WHIP session"


async def test_a_camera_outage_restarts_the_pusher_with_backoff_until_frames_flow_again(
    client: Redis,
    docker_api: Any,
    media_pusher_image: str,
    new_stack: NewStack,
    rig: MediaRig,
    pusher_engine: str,
) -> None:
    # No heartbeats needed with a long lease.
    env = media_env(
        media_pusher_image, rig, CCTV_LEASE_SECONDS="300", CCTV_PUSHER_ENGINE=pusher_engine
    )
    async with new_stack(env, whip_base_url=rig.whip_base_url) as s:
        await add_camera(s, rig)
        await admit(s.http, CAMERA)
        await eventually(lambda: frames_after(rig, 25), 60, "frames before the outage")

        down_at = time.time()
        await asyncio.to_thread(rig.stop_camera)

        def lifecycle() -> list[dict[str, Any]]:
            events = docker_api.events(
                since=int(down_at) - 1,
                until=int(time.time()) + 1,
                filters={"type": "container", "label": f"{CAMERA_LABEL}={CAMERA}"},
                decode=True,
            )
            return [e for e in events if e.get("status") in ("die", "start")]

        async def failed_twice() -> bool:
            dies = [e for e in await asyncio.to_thread(lifecycle) if e["status"] == "die"]
            return len(dies) >= 2

        await eventually(failed_twice, 60, "the pusher fails twice while the camera is down")
        events = await asyncio.to_thread(lifecycle)
        dies = [e for e in events if e["status"] == "die"]
        assert {e["Actor"]["Attributes"]["exitCode"] for e in dies} == {"1"}, dies
        # Each restart waited for the backoff (initial 0.5 s) after the previous death.
        starts = [e["timeNano"] for e in events if e["status"] == "start"]
        for die in dies:
            later = [t for t in starts if t > die["timeNano"]]
            if later:
                gap = (min(later) - die["timeNano"]) / 1e9
                assert gap >= 0.45, f"restarted {gap:.2f} s after a failure"

        sessions_before = len((await rig.control.stats())["sessions"])
        await asyncio.to_thread(rig.start_camera)  # the camera comes back; no API call is made
        await eventually(
            lambda: frames_after(rig, 50, sessions_before), 60, "frames flow again after the outage"
        )
        restarts = value(await scrape(s.http), "cctv_pusher_restarts_total")
        assert restarts >= 2, restarts
        assert (
            len(await asyncio.to_thread(pusher_containers, docker_api, CAMERA, running=True)) == 1
        )


async def test_stats_show_what_the_camera_encodes_high_profile_b_frames_or_baseline(
    client: Redis, docker_api: Any, media_pusher_image: str, new_stack: NewStack, rig: MediaRig
) -> None:
    """LiveKit labels every bypass stream 42001f, so the pusher reports the camera's real
    profile and B-frames; stats, the metric and its log carry it. The default engine (FFmpeg's
    muxer) refuses B-frames, so that camera is handed to the aiortc engine, and says so."""
    env = media_env(media_pusher_image, rig, CCTV_LEASE_SECONDS="300")  # no heartbeats needed
    async with new_stack(env, whip_base_url=rig.whip_base_url) as s:
        await add_camera(s, rig)
        await admit(s.http, CAMERA)

        async def codec_of(generation: int) -> dict[str, Any] | None:
            """The codec in stats when a pusher of ``generation`` or a later one reported it."""
            codec: dict[str, Any] | None = (await camera_stats(s.http, CAMERA)).get("codec")
            return codec if codec and codec["generation"] >= generation else None

        async def reported(generation: int) -> bool:
            return await codec_of(generation) is not None

        await eventually(lambda: reported(1), 90, "the Baseline camera's codec in stats")
        baseline = await codec_of(1)
        assert baseline is not None
        assert {k: v for k, v in baseline.items() if k != "generation"} == {
            "profile": "Constrained Baseline",
            "level": "3.0",
            "width": 640,
            "height": 360,
            "fps": 25.0,
            "b_frames": False,
        }

        # The camera is reconfigured to High profile with B-frames: its stream drops, the
        # pusher exits 1 and is restarted (generation 2, or later when a restart comes before
        # the camera is back, as on a busy machine), and its report follows.
        await asyncio.to_thread(rig.stop_camera)
        rig.profile, rig.b_frames = "high", 2
        await asyncio.to_thread(rig.start_camera)
        after = baseline["generation"] + 1
        await eventually(lambda: reported(after), 120, "the High-profile camera's codec in stats")
        codec = await codec_of(after)
        assert codec is not None
        assert (codec["profile"], codec["b_frames"]) == ("High", True)
        assert (codec["width"], codec["height"], codec["fps"]) == (640, 360, 25.0)

        labels = {"camera_id": CAMERA, "profile": "High", "level": codec["level"]}
        info = value(await scrape(s.http), "cctv_camera_codec_info", **labels, b_frames="true")
        assert info == 1.0
        [pusher] = await asyncio.to_thread(pusher_containers, docker_api, CAMERA, running=True)
        log = await asyncio.to_thread(pusher_log, docker_api, pusher["Id"])
        [line] = [entry for entry in log if entry["event"] == "codec"]
        assert (line["profile"], line["b_frames"], line["level"]) == ("High", True, "info")
        [fallback] = [entry for entry in log if entry["event"] == "engine_fallback"]
        assert fallback["engine"] == "aiortc" and "B-frames" in fallback["reason"]
        assert [e["engine"] for e in log if e["event"] == "pipeline"] == ["aiortc"]
        sessions = len((await rig.control.stats())["sessions"])
        await eventually(lambda: frames_after(rig, 25, sessions - 1), 60, "B-frame camera frames")
