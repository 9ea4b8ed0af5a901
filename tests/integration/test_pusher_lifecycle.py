"""The pusher lifecycle on the real Docker engine, with real ``serve`` processes sharing one
real Valkey. Containers run the locally built placeholder pusher with no network.

Every container here comes from a test image labelled ``cctv.orchestrator.test=1`` (labels of
the image carry over to its containers) and is swept by label after each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator.store.cameras import CameraRegistry
from tests.docker_proxy import DelayingDockerProxy
from tests.harness.docker import pusher_containers, start_orphan
from tests.harness.http import ADMIN_HEADERS, admit, camera_stats, release
from tests.harness.service import ServiceProcess, running
from tests.harness.store import add_cameras
from tests.harness.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]

GRACE_S = 3.0
CLAIM_S = 4.0


@pytest.fixture
def service_env(pusher_image: str) -> dict[str, str]:
    return {
        "CCTV_PUSHERS_ENABLED": "true",
        "CCTV_PUSHER_IMAGE": pusher_image,
        "CCTV_PUSHER_NETWORK": "none",
        "CCTV_DRAIN_GRACE_SECONDS": str(GRACE_S),
        "CCTV_CLAIM_SECONDS": str(CLAIM_S),
        "CCTV_PUSHER_TICK_SECONDS": "0.1",
        "CCTV_RECONCILE_INTERVAL_SECONDS": "1",
        "CCTV_RESTART_INITIAL_SECONDS": "1",
        "CCTV_RESTART_MAX_SECONDS": "5",
        "CCTV_SWEEP_INTERVAL_SECONDS": "0.5",
        "CCTV_SOURCE_LIMITS": json.dumps({"METRO": 5000, "TOTAL": 5000}),
        "CCTV_WHIP_URL": "http://127.0.0.1:9/whip",
        "CCTV_WHIP_TOKEN": "whip-bearer-never-logged-7f3a9c",
    }


# ``orchestrators(count, *cameras, **extra)``: the cameras registered, then ``orch-0`` ...
# sharing one Valkey (``extra[name]`` adds to one service's environment), to ``async with``.
Orchestrators = Callable[..., contextlib.AbstractAsyncContextManager[list[ServiceProcess]]]


@pytest.fixture
def orchestrators(
    registry: CameraRegistry, service_env: dict[str, str], valkey_url: str, tmp_path: Path
) -> Orchestrators:
    @contextlib.asynccontextmanager
    async def start(
        count: int, *cameras: str, **extra: dict[str, str]
    ) -> AsyncIterator[list[ServiceProcess]]:
        await add_cameras(registry, *cameras)
        names = [f"orch-{i}" for i in range(count)]
        env = [{**service_env, **extra.get(name, {})} for name in names]
        procs = (
            ServiceProcess(n, tmp_path, valkey_url, e) for n, e in zip(names, env, strict=True)
        )
        async with running(*procs) as started:
            yield started

    return start


async def reserve(http: Any, camera_id: str, user: str = "op") -> str:
    return str((await admit(http, camera_id, user=user))["reservation_id"])


class ContainerPoller:
    """Counts the camera's containers every 50 ms in a thread; remembers the most it saw."""

    def __init__(self, api: Any, camera_id: str) -> None:
        self.api = api
        self.camera_id = camera_id
        self.most = 0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(pusher_containers(self.api, self.camera_id)))
            self.polls += 1
            self._stop.wait(0.05)

    def __enter__(self) -> ContainerPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def test_300_concurrent_first_viewers_over_3_processes_start_exactly_one_pusher(
    docker_api: Any,
    orchestrators: Orchestrators,
) -> None:
    async with orchestrators(3, "cam-race") as procs:
        with ContainerPoller(docker_api, "cam-race") as poller:
            https = [p.http for p in procs]
            rids = await asyncio.gather(
                *(reserve(https[i % 3], "cam-race", f"u{i}") for i in range(300))
            )
            assert len(set(rids)) == 300

            async def one_running() -> bool:
                stats = await camera_stats(https[0], "cam-race")
                return stats["pusher_state"] == "RUNNING" and bool(
                    await asyncio.to_thread(pusher_containers, docker_api, "cam-race", running=True)
                )

            await eventually(one_running, 30, "the pusher of cam-race running")
            await asyncio.sleep(2 * CLAIM_S)  # any straggling claim would have acted by now
            stats = await camera_stats(https[1], "cam-race")
            assert stats["reserved_count"] == 300
            assert stats["generation"] == 1, "exactly one start was claimed"
    assert poller.polls > 20
    assert poller.most == 1, f"a poll saw {poller.most} containers for one camera"
    assert len(pusher_containers(docker_api, "cam-race")) == 1


async def test_50_cameras_by_4_viewers_give_50_pushers_and_none_after_release(
    docker_api: Any,
    orchestrators: Orchestrators,
) -> None:
    ids = [f"cam-{i:02d}" for i in range(50)]
    async with orchestrators(2, *ids) as procs:
        https = [p.http for p in procs]
        rids = await asyncio.gather(
            *(reserve(https[i % 2], ids[i % 50], f"u{i}") for i in range(200))
        )

        async def fifty_running() -> bool:
            running = await asyncio.to_thread(pusher_containers, docker_api)
            return sum(1 for c in running if c["State"] == "running") == 50

        await eventually(fifty_running, 90, "50 running pushers", interval=0.25)
        assert len(await asyncio.to_thread(pusher_containers, docker_api)) == 50
        releasing_at = time.monotonic()
        await asyncio.gather(*(release(https[i % 2], rid) for i, rid in enumerate(rids)))
        await asyncio.sleep(GRACE_S / 3)
        still = await asyncio.to_thread(pusher_containers, docker_api)
        if time.monotonic() - releasing_at < GRACE_S:  # a busy machine may be past it
            assert len(still) == 50, "a pusher was torn down inside the drain grace"

        async def none_left() -> bool:
            return not await asyncio.to_thread(pusher_containers, docker_api)

        # Liveness only: how fast teardown goes is a figure of
        # tests/benchmarks/pusher_start.py (the burst release), not a bound here.
        await eventually(none_left, GRACE_S + 60, "every pusher removed", interval=0.25)
        body = (await https[0].get("/api/v1/stream/stats")).json()
        assert body["total_reserved"] == 0
        assert body["source_stats"]["METRO"]["current"] == 0


async def test_reserve_inside_the_grace_keeps_the_same_container(
    docker_api: Any,
    orchestrators: Orchestrators,
) -> None:
    async with orchestrators(1, "cam-grace") as procs:
        (http,) = [p.http for p in procs]
        rid = await reserve(http, "cam-grace")

        async def running() -> bool:
            return bool((await camera_stats(http, "cam-grace"))["pusher_state"] == "RUNNING")

        await eventually(running, 30, "cam-grace running")
        (before,) = pusher_containers(docker_api, "cam-grace", running=True)
        await release(http, rid)
        assert (await camera_stats(http, "cam-grace"))["pusher_state"] == "DRAINING"
        await asyncio.sleep(GRACE_S / 3)
        await reserve(http, "cam-grace")
        await asyncio.sleep(GRACE_S + 1)  # past the old deadline: teardown must not happen
        (after,) = pusher_containers(docker_api, "cam-grace", running=True)
        assert after["Id"] == before["Id"]
        stats = await camera_stats(http, "cam-grace")
        assert (stats["pusher_state"], stats["generation"]) == ("RUNNING", 1)


async def test_killed_pusher_is_restarted_with_backoff_and_counters_untouched(
    docker_api: Any,
    orchestrators: Orchestrators,
) -> None:
    async with orchestrators(2, "cam-kill") as procs:
        https = [p.http for p in procs]
        rids = [await reserve(https[0], "cam-kill", "a"), await reserve(https[1], "cam-kill")]

        async def running() -> bool:
            stats = await camera_stats(https[0], "cam-kill")
            return bool(stats["pusher_state"] == "RUNNING")

        await eventually(running, 30, "cam-kill running")
        (first,) = pusher_containers(docker_api, "cam-kill", running=True)
        docker_api.api.kill(first["Id"])

        async def replaced() -> bool:
            now = await asyncio.to_thread(pusher_containers, docker_api, "cam-kill", running=True)
            return len(now) == 1 and now[0]["Id"] != first["Id"] and await running()

        # First restart delay: 1 s + up to 1 s jitter, then event delivery and the start: a
        # few seconds; the bound is for liveness on a busy machine, well under the 60 s cap.
        await eventually(replaced, 30, "a new pusher after docker kill")
        stats = await camera_stats(https[1], "cam-kill")
        assert stats["reserved_count"] == 2
        assert stats["restarts"] >= 1
        assert "137" in (stats["last_error"] or "") or "exit" in (stats["last_error"] or "")
        body = (await https[0].get("/api/v1/stream/stats")).json()
        assert body["source_stats"]["METRO"]["current"] == 2
        for i, rid in enumerate(rids):
            beat = await https[i].post(f"/api/v1/stream/heartbeat/{rid}", headers=ADMIN_HEADERS)
            assert beat.status_code == 200
        assert len(pusher_containers(docker_api, "cam-kill")) == 1


async def test_sigkill_of_the_claimant_mid_start_is_taken_over(
    docker_api: Any,
    orchestrators: Orchestrators,
) -> None:
    async with DelayingDockerProxy(delay_seconds=2.0) as proxy:
        slow = {"orch-0": {"DOCKER_HOST": proxy.url}}
        async with orchestrators(2, "cam-crash", **slow) as procs:
            https = [p.http for p in procs]
            await reserve(https[0], "cam-crash")  # orch-0 claims and starts, slowly

            async def create_in_flight() -> bool:
                return proxy.delayed_creates > 0

            await eventually(create_in_flight, 10, "orch-0 sending its create")
            procs[0].kill()
            killed_at = time.monotonic()

            async def converged() -> bool:
                stats = await camera_stats(https[1], "cam-crash")
                now = await asyncio.to_thread(pusher_containers, docker_api, "cam-crash")
                return (
                    stats["pusher_state"] == "RUNNING"
                    and len(now) == 1
                    and now[0]["State"] == "running"
                )

            took = await eventually(converged, CLAIM_S + 5, "one running pusher after SIGKILL")
            stats = await camera_stats(https[1], "cam-crash")
            assert stats["generation"] >= 2, "the claim was taken over"
            assert stats["reserved_count"] == 1
            await asyncio.sleep(2)  # the delayed create of the dead claimant has landed
            assert len(pusher_containers(docker_api, "cam-crash")) == 1
            print(f"converged {took:.1f} s after SIGKILL (killed at {killed_at:.0f})")


_ENGINES: list[subprocess.Popen[bytes]] = []


def dockerd_command() -> tuple[int, list[str]]:
    """The engine the tests use: the dockerd of the default pid file. Other dockerds may run on
    the machine (another suite's own engines); the first of ``pidof`` may be one of them."""
    pid_file = Path("/var/run/docker.pid")
    if pid_file.exists():
        pid = int(pid_file.read_text())
    else:  # no pid file: the one dockerd started without a socket or pid file of its own
        pids = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
        [pid] = [int(p) for p in pids if not _own_endpoint(_cmdline(int(p)))]
    return pid, _cmdline(pid)


def _cmdline(pid: int) -> list[str]:
    parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return [part.decode() for part in parts if part]


def _own_endpoint(argv: list[str]) -> bool:
    return any(a.startswith(("-H", "--host", "--pidfile", "-p")) for a in argv[1:])


def restart_dockerd() -> None:
    pid, command = dockerd_command()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "dockerd did not stop within 60 s"
    with open("/tmp/cctv-dockerd.log", "ab") as log:  # noqa: PTH123 - handed to the child
        # The engine outlives the test on purpose (it is the machine's engine): keep the
        # handle so it is never collected (and warned about) while it runs.
        _ENGINES.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the socket appears a moment after the start
            client = docker.from_env(timeout=5)
            try:
                if client.ping():
                    return
            finally:
                client.close()
        time.sleep(0.2)
    raise AssertionError("dockerd did not answer within 60 s of its restart")


async def test_dockerd_restart_converges_without_duplicates_or_lost_viewers(
    docker_api: Any,
    orchestrators: Orchestrators,
) -> None:
    ids = ["cam-d1", "cam-d2", "cam-d3"]
    async with orchestrators(2, *ids) as procs:
        https = [p.http for p in procs]
        for i, camera_id in enumerate(ids):
            await reserve(https[i % 2], camera_id)
            await reserve(https[(i + 1) % 2], camera_id)

        async def all_running() -> bool:
            for camera_id in ids:
                stats = await camera_stats(https[0], camera_id)
                if stats["pusher_state"] != "RUNNING":
                    return False
                now = await asyncio.to_thread(pusher_containers, docker_api, camera_id)
                if len(now) != 1 or now[0]["State"] != "running":
                    return False
            return True

        await eventually(all_running, 30, "three pushers running")
        before = {c: pusher_containers(docker_api, c, running=True)[0]["Id"] for c in ids}
        with warnings.catch_warnings():
            # Sockets to the old engine die with it; the SDK leaves them to the collector.
            warnings.simplefilter("ignore", ResourceWarning)
            await asyncio.to_thread(restart_dockerd)
            docker_api.api.close()  # drop pooled connections to the old engine
            gc.collect()
        await eventually(all_running, 60, "three pushers running after the dockerd restart")
        await asyncio.sleep(3)
        assert await all_running(), "state did not stay converged"
        for camera_id in ids:
            stats = await camera_stats(https[1], camera_id)
            assert stats["reserved_count"] == 2, f"{camera_id} lost viewers"
            assert len(pusher_containers(docker_api, camera_id)) == 1
        body = (await https[0].get("/api/v1/stream/stats")).json()
        assert body["source_stats"]["METRO"]["current"] == 6
        print(
            "containers before/after:",
            before,
            {c: pusher_containers(docker_api, c, running=True)[0]["Id"] for c in ids},
        )


async def test_hand_started_managed_container_is_removed_by_the_next_reconcile_pass(
    docker_api: Any,
    pusher_image: str,
    registry: CameraRegistry,
    valkey_url: str,
) -> None:
    from orchestrator.config import Settings
    from orchestrator.wiring import open_services

    await add_cameras(registry, "cam-hand", "cam-watched")
    stray = start_orphan(docker_api, pusher_image, "cam-hand", generation=7)
    assert stray is not None, "the orphan was removed before it started"
    unlabelled = docker_api.containers.run(
        pusher_image, name="not-ours-cam-hand", detach=True, network_mode="none"
    )
    settings = Settings(valkey_url=valkey_url, pusher_image=pusher_image, pusher_network="none")
    async with open_services(settings, run_loops=False) as svc:
        first = await svc.reconciler.run_once()
        assert [(c.kind, c.camera_id) for c in first] == [("orphan", "cam-hand")]
        assert not pusher_containers(docker_api, "cam-hand")
        second = await svc.reconciler.run_once()
        assert second == []
        assert (await svc.pushers.view("cam-hand")).generation == 7  # fenced past the orphan
    unlabelled.reload()
    assert unlabelled.status == "running", "a container without our labels is never touched"
    assert stray.id not in {c["Id"] for c in pusher_containers(docker_api)}
