"""Both pusher engines on the same stream in one run: reserve → first frame, CPU and memory.

    python -m tests.benchmarks.media_path [--runs 10] [--steady-seconds 30] [--rounds 3]
        [--engines ffmpeg aiortc] [--many 20] [--many-size 1920x1080]

Everything is real except LiveKit: an embedded Valkey, the service (``serve``) as a separate
process with pushers enabled, the Docker engine, the pusher image built from ``deploy/pusher``
without a registry, the RTSP camera simulator and the decoding WHIP receiver, all inside a
loopback-only lab network (``tests/media/lab.py``). The LiveKit fake hands out the receiver as
its ingress URL. Each engine gets its own service (``CCTV_PUSHER_ENGINE``); the camera and the
receiver are the same processes for both.

1. **Reserve → first decoded frame**, 640x360 25 fps, GOP ``--first-gop`` frames (0.2 s),
   per engine. The camera starts every client at its next IDR, which adds up to one GOP to each
   run: the short GOP keeps that noise small, and each run waits a random 0-1 s first, so no
   engine's rhythm lines up with the GOP better than the other's. It reserves the camera
   (cold: no container), takes the wall-clock time just before the request and the receiver's
   wall-clock time of its first decoded frame, then releases and waits for the container to
   be removed. One warm-up run is not counted. The pusher's own log splits each run: process
   start → camera open → publishing (ICE+DTLS connected).
2. **Steady state at 1920x1080 25 fps** (about 4 Mbit/s), ``--rounds`` rounds with the engines
   alternating: after frames flow and a warm-up, the container's CPU time (cgroup, all its
   processes; and their own user+system time from ``/proc``) over ``--steady-seconds`` as % of
   one core, and the memory of its processes (``smaps_rollup``: Rss, Pss, Private_Dirty,
   Anonymous), sampled each second. The medians give the ratios FFmpeg engine / aiortc engine.
3. **Many at once** (``--many``, default 20, first engine): the receiver counts frames without
   decoding them, so it keeps up; the slowest stream's frame rate shows every camera kept
   flowing, and the per-pusher figures (Pss: the shared library pages counted once) give the
   cameras one 2-core 24 GiB host holds.

The engine must be idle (another orchestrator or test run would remove these containers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import docker

from tests.benchmarks.pusher_start import engine_in_use
from tests.benchmarks.stats import percentile, run_on_valkey, script_parser
from tests.harness.constants import REPO_ROOT
from tests.harness.docker import pusher_containers
from tests.harness.http import admit, put_camera, release
from tests.harness.images import build_placeholder_pusher_image, with_test_label
from tests.harness.livekit import Stack, pusher_env, stack
from tests.media.rig import MediaRig, media_rig, pusher_log

CAMERA = "cam-bench"


async def poll(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


async def setup(s: Stack, rig: MediaRig, camera: str = CAMERA) -> None:
    put = await put_camera(s.http, camera, rig.camera_url, name="Bench camera")
    assert put.status_code in (200, 201), put.text


async def release_and_wait(
    s: Stack, docker_api: Any, lease: dict[str, Any], camera: str = CAMERA
) -> None:
    await release(s.http, lease["reservation_id"])

    async def gone() -> bool:
        return not await asyncio.to_thread(pusher_containers, docker_api, camera, running=True)

    await poll(gone, 60, "the pusher container to go")


def pusher_events(docker_api: Any, container_id: str) -> dict[str, dict[str, Any]]:
    """The last log line of each event."""
    return {line["event"]: line for line in pusher_log(docker_api, container_id)}


async def first_frames(s: Stack, rig: MediaRig, docker_api: Any, runs: int) -> float:
    await setup(s, rig)
    latencies: list[float] = []
    opens: list[float] = []
    publishing: list[float] = []
    for run in range(runs + 1):
        before = len((await rig.control.stats())["sessions"])
        # The camera starts each client at its next IDR (GOP 1 s): a random phase, so that no
        # engine's run rhythm lines up with the camera's GOP better than another's.
        await asyncio.sleep(random.uniform(0, 1))
        sent = time.time()
        lease = await admit(s.http, CAMERA)

        async def first_frame(before: int = before) -> float | None:
            sessions = (await rig.control.stats())["sessions"][before:]
            return sessions[0]["first_frame_at"] if sessions else None

        frame_at = await poll(first_frame, 60, "the first decoded frame")
        [pusher] = await asyncio.to_thread(pusher_containers, docker_api, CAMERA, running=True)
        events = await asyncio.to_thread(pusher_events, docker_api, pusher["Id"])
        await release_and_wait(s, docker_api, lease)
        if run == 0:
            continue  # warm-up
        latencies.append(frame_at - sent)
        opens.append(events["camera_open"]["seconds"])
        publishing.append(events["publishing"]["seconds"])
        print(
            f"  run {run:2d}: reserve -> first decoded frame {latencies[-1] * 1000:6.0f} ms "
            f"(pusher: camera open {opens[-1] * 1000:5.0f} ms, "
            f"publishing {publishing[-1] * 1000:5.0f} ms after its start)"
        )
    p50 = percentile(latencies, 50)
    print(
        f"reserve -> first decoded frame, {runs} runs: p50 {p50 * 1000:.0f} ms"
        f"  min {min(latencies) * 1000:.0f}  max {max(latencies) * 1000:.0f} ms"
        f"  (pusher camera open p50 {statistics.median(opens) * 1000:.0f} ms,"
        f" publishing p50 {statistics.median(publishing) * 1000:.0f} ms)"
    )
    return p50


def pusher_image() -> str:
    """The real pusher image's tag, from its builder as ``make pusher-image`` runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "deploy" / "pusher")}
    done = subprocess.run(
        [sys.executable, "-m", "pusher_image"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the pusher image did not build:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def memory_kib(pids: list[str]) -> dict[str, int]:
    """Rss, Pss, Anonymous and Private (``Private_Dirty``) KiB summed over ``pids``, from
    ``/proc/<pid>/smaps_rollup``. Private is what one more pusher adds to a host: its clean
    pages are the image's files, in the page cache once for every pusher."""
    total = {"Rss": 0, "Pss": 0, "Anonymous": 0, "Private": 0}
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(":")[0]
            if key == "Private_Dirty":
                total["Private"] += int(line.split()[1])
            elif key in total:
                total[key] += int(line.split()[1])
    return total


def process_ticks(pids: list[str]) -> int:
    """User + system clock ticks of ``pids`` (``/proc/<pid>/stat``, all threads)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total


def cpu_ns(docker_api: Any, container_id: str) -> int:
    stats = docker_api.api.stats(container_id, stream=False)
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"])


async def steady_state(
    s: Stack, rig: MediaRig, docker_api: Any, seconds: float, pushers: int
) -> dict[str, float]:
    """Per pusher: CPU % of a core and mean memory (MiB); the slowest stream's fps."""
    cameras = [f"{CAMERA}-{i}" for i in range(pushers)]
    before = len((await rig.control.stats())["sessions"])  # earlier rounds' sessions
    leases = []
    for camera in cameras:  # every camera pulls the same simulator; each gets its own pusher
        await setup(s, rig, camera)
        leases.append(await admit(s.http, camera))

    async def frames() -> list[int]:
        sessions = (await rig.control.stats())["sessions"][before:][-pushers:]
        return [session["frames"] for session in sessions]

    async def flowing() -> bool:
        sessions = (await rig.control.stats())["sessions"][before:]
        return len(sessions) >= pushers and all(x["frames"] >= 100 for x in sessions[-pushers:])

    await poll(flowing, 90, "1080p frames from every pusher")
    ids = [
        row["Id"]
        for camera in cameras
        for row in await asyncio.to_thread(pusher_containers, docker_api, camera, running=True)
    ]
    await asyncio.sleep(10)  # warm-up: jitter buffers, bitrate estimation, caches
    tops = [await asyncio.to_thread(docker_api.api.top, cid, "-o pid,pid") for cid in ids]
    pids = [row[1] for top in tops for row in top["Processes"]]

    def cpu_total() -> int:
        return sum(cpu_ns(docker_api, cid) for cid in ids)

    frames0, frames_t0 = await frames(), time.monotonic()
    ticks0, ticks_t0 = process_ticks(pids), time.monotonic()
    cpu0, t0 = await asyncio.to_thread(cpu_total), time.monotonic()
    samples: list[dict[str, int]] = []
    while time.monotonic() - t0 < seconds:
        samples.append(memory_kib(pids))
        await asyncio.sleep(1)
    ticks1, ticks_t1 = process_ticks(pids), time.monotonic()
    cpu1, t1 = await asyncio.to_thread(cpu_total), time.monotonic()
    frames1, frames_t1 = await frames(), time.monotonic()
    cpu_pct = (cpu1 - cpu0) / ((t1 - t0) * 1e9) * 100 / pushers
    tick = os.sysconf("SC_CLK_TCK")
    proc_pct = (ticks1 - ticks0) / tick / (ticks_t1 - ticks_t0) * 100 / pushers

    def mean(key: str) -> float:
        return statistics.fmean(sample[key] / 1024 / pushers for sample in samples)

    def mib(key: str) -> str:
        peak = max(sample[key] / 1024 / pushers for sample in samples)
        return f"{key} mean {mean(key):.1f} max {peak:.1f} MiB"

    # Docker's stats take a second or two per container, so frames have their own window.
    fps = [(b - a) / (frames_t1 - frames_t0) for a, b in zip(frames0, frames1, strict=True)]
    print(
        f"steady state, {pushers} pusher(s) at {rig.size} {rig.fps} fps, over {t1 - t0:.0f} s,"
        f" per pusher ({len(pids) // pushers} processes each): CPU {cpu_pct:.2f} % of a core"
        f" (cgroup; its processes' own user+system time: {proc_pct:.2f} %);"
        f" {mib('Rss')}; {mib('Pss')}; {mib('Private')}; {mib('Anonymous')};"
        f" receiver got {statistics.fmean(fps):.1f} fps per stream (slowest {min(fps):.1f})"
    )
    events = await asyncio.to_thread(pusher_events, docker_api, ids[0])
    print(f"a pusher's last stats line: {json.dumps(events.get('stats'))}")
    for camera, lease in zip(cameras, leases, strict=True):
        await release_and_wait(s, docker_api, lease, camera)
    figures = {k.lower(): mean(k) for k in ("Rss", "Pss", "Private", "Anonymous")}
    return {**figures, "cpu": cpu_pct, "process_cpu": proc_pct, "slowest_fps": min(fps)}


def engine_stack(
    path: Path, valkey_url: str, image: str, rig: MediaRig, engine: str
) -> AbstractAsyncContextManager[Stack]:
    """The service (with the LiveKit fake) whose pushers use ``engine``, in the lab ``rig``."""
    path.mkdir(parents=True, exist_ok=True)
    env = pusher_env(
        image,
        CCTV_PUSHER_NETWORK=rig.lab.network_mode,
        CCTV_PUSHER_STOP_TIMEOUT_SECONDS="5",
        CCTV_LEASE_SECONDS="300",
        CCTV_DRAIN_GRACE_SECONDS="0.2",
        CCTV_PUSHER_ENGINE=engine.removesuffix("-demux"),
        CCTV_PUSHER_RTSP_READER="ffmpeg" if engine.endswith("-demux") else "lean",
    )
    return stack(path, valkey_url, env, whip_base_url=rig.whip_base_url)


def ratios(first: dict[str, float], steady: dict[str, dict[str, float]]) -> None:
    """FFmpeg engine / aiortc engine, as measured above (targets from issue 19)."""
    if "ffmpeg" in first and "aiortc" in first:
        print(f"ratio ffmpeg/aiortc, first frame p50: {first['ffmpeg'] / first['aiortc']:.2f}")
    if "ffmpeg" in steady and "aiortc" in steady:
        f, a = steady["ffmpeg"], steady["aiortc"]
        print(
            f"ratio ffmpeg/aiortc at 1080p: CPU {f['cpu'] / a['cpu']:.2f} (target <= 0.4;"
            f" by process time {f['process_cpu'] / a['process_cpu']:.2f}),"
            f" private memory {f['private'] / a['private']:.2f} (target <= 0.5),"
            f" Pss {f['pss'] / a['pss']:.2f}, Rss {f['rss'] / a['rss']:.2f}"
        )
    if "ffmpeg" in steady and "ffmpeg-demux" in steady:
        f, d = steady["ffmpeg"], steady["ffmpeg-demux"]
        print(
            f"ratio lean reader / FFmpeg's demuxer (ffmpeg engine) at 1080p: CPU"
            f" {f['cpu'] / d['cpu']:.2f}, private memory {f['private'] / d['private']:.2f}"
        )


def paired_ratios(rounds: dict[str, list[dict[str, float]]]) -> None:
    """CPU ffmpeg / aiortc round by round: each pair ran back to back, so a drift of the
    machine's load between rounds cancels out of it (the ratio of the medians keeps it)."""
    if not rounds.get("ffmpeg") or not rounds.get("aiortc"):
        return
    each = [f["cpu"] / a["cpu"] for f, a in zip(rounds["ffmpeg"], rounds["aiortc"], strict=True)]
    listed = ", ".join(f"{r:.2f}" for r in each)
    print(f"CPU ffmpeg/aiortc round by round: {listed}; median {statistics.median(each):.2f}")


def per_host(figures: dict[str, float], cores: float = 2.0, gib: float = 24.0) -> None:
    """Cameras one host holds at these per-pusher figures, with 20 % kept free."""
    by_cpu = int(cores * 100 * 0.8 / figures["cpu"])
    by_memory = int(gib * 1024 * 0.8 / figures["pss"])
    print(
        f"implied cameras per {cores:.0f}-core {gib:.0f} GiB host at 80 % use: CPU {by_cpu},"
        f" memory {by_memory} (by Pss): {min(by_cpu, by_memory)}"
    )


async def run(valkey_url: str, tmp: Path, args: argparse.Namespace) -> None:
    client = docker.from_env(timeout=60)
    busy = engine_in_use(client.api)
    if busy:
        raise SystemExit(f"the engine is in use ({', '.join(busy[:5])}); run when it is idle")
    lab_image = build_placeholder_pusher_image(client)
    image = with_test_label(client, await asyncio.to_thread(pusher_image))
    print(f"media path: pusher image {image}, {args.runs} runs, engines {args.engines}")
    first: dict[str, float] = {}
    steady: dict[str, dict[str, float]] = {}
    if not args.skip_first:
        with media_rig(client, lab_image, tmp / "first", gop=args.first_gop) as rig:
            for engine in args.engines:
                print(f"[{engine}] reserve -> first frame at 640x360")
                path = tmp / f"first-{engine}"
                async with engine_stack(path, valkey_url, image, rig, engine) as s:
                    first[engine] = await first_frames(s, rig, client, args.runs)
    if not args.skip_steady:
        rounds: dict[str, list[dict[str, float]]] = {engine: [] for engine in args.engines}
        with media_rig(client, lab_image, tmp / "steady", size="1920x1080") as rig:
            for round_ in range(args.rounds):  # engines alternate: the machine's drift hits both
                for engine in args.engines:
                    path = tmp / f"steady-{engine}-{round_}"
                    async with engine_stack(path, valkey_url, image, rig, engine) as s:
                        for pushers in args.pushers:
                            print(f"[{engine}, round {round_ + 1}]", end=" ")
                            result = await steady_state(
                                s, rig, client, args.steady_seconds, pushers
                            )
                            if pushers == 1:
                                rounds[engine].append(result)
        steady = {
            engine: {key: statistics.median(r[key] for r in results) for key in results[0]}
            for engine, results in rounds.items()
            if results
        }
        print(f"medians over {args.rounds} round(s): {json.dumps(steady)}")
        paired_ratios(rounds)
    ratios(first, steady)
    if args.many:
        size = args.many_size
        with media_rig(client, lab_image, tmp / "many", size=size, decode=False) as rig:
            path = tmp / "many-stack"
            async with engine_stack(path, valkey_url, image, rig, args.engines[0]) as s:
                print(f"[{args.engines[0]}] {args.many} pushers at once, receiver not decoding:")
                many = await steady_state(s, rig, client, args.steady_seconds, args.many)
        per_host(many)
    client.close()


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--runs", type=int, default=10, help="timed reserve -> frame runs")
    parser.add_argument("--steady-seconds", type=float, default=30, help="CPU/RSS window")
    parser.add_argument("--skip-steady", action="store_true", help="only the first-frame runs")
    parser.add_argument("--skip-first", action="store_true", help="only the steady state")
    parser.add_argument(
        "--pushers",
        type=int,
        nargs="+",
        default=[1],
        help="steady-state rounds per engine: this many 1080p pushers at once (default: 1)",
    )
    parser.add_argument(
        "--first-gop",
        type=int,
        default=5,
        help="the camera's IDR interval (frames) for the first-frame runs: each client starts "
        "at the next IDR, so a long GOP adds up to that much noise to every run (default 5)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="steady-state rounds per engine, alternating"
    )
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["ffmpeg", "aiortc"],
        choices=["ffmpeg", "ffmpeg-demux", "aiortc"],
        help="pusher engines to measure, in this order (default: both); ffmpeg-demux is the"
        " ffmpeg engine reading the camera with FFmpeg's RTSP demuxer instead of the lean reader",
    )
    parser.add_argument(
        "--many", type=int, default=20, help="then this many pushers at once (0: skip)"
    )
    parser.add_argument(
        "--many-size", default="1920x1080", help="their camera's picture size (WxH)"
    )
    args = parser.parse_args()
    run_on_valkey(lambda url, tmp: run(url, tmp, args), asyncio.run)


if __name__ == "__main__":
    main()
