"""Time from first-viewer reserve to Swarm task running, against `docker service create`.

    python -m tests.benchmarks.swarm_start [--cameras 20]

Builds the test cluster (``tests/cluster``: three dockerd nodes in network namespaces of this
machine, a drained manager and two workers labelled ``cctv.pushers=true``, dispatcher
heartbeat 1 s) with the placeholder pusher image loaded into every node, an embedded Valkey,
and the real service (``cctv-orchestrator serve``) with ``CCTV_RUNTIME=swarm`` on the
manager, default timings (pusher tick 0.25 s, task poll 0.5 s), LiveKit off and a fixed WHIP
URL (the placeholder never publishes).

"Running" is the first look, by a thread of this script polling the manager every 50 ms,
that finds the service's task in state ``running``; each latency runs from just before the
request (the reserve, or the CLI's start) to that look. Cameras go one at a time, so each
figure is uncontended; interleaved with them, on the same image and cluster, comes the
baseline: ``docker service create --detach`` with the same options (1 replica, restart
condition none, dnsrr, init, limits, reservations, the placement constraint, the overlay
network, ``--no-resolve-image``), and the same service created through the docker SDK
(no CLI process, no secret). One warm-up of each goes first and is not counted.

Then the teardown: every reservation released at once, timed from the last release answered
to the first look that finds none of the run's services left, against its target (drain
grace + one task poll + 2 s).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
from docker.types import (
    ContainerSpec,
    EndpointSpec,
    NetworkAttachmentConfig,
    Placement,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)

from orchestrator.domain.containers import CAMERA_LABEL, INSTANCE_LABEL
from tests.benchmarks.http_api import bench_service
from tests.benchmarks.stats import percentile, run_on_valkey, script_parser
from tests.cluster.swarm import SwarmCluster
from tests.harness.http import ADMIN_HEADERS
from tests.harness.images import TEST_LABEL, build_placeholder_pusher_image
from tests.harness.store import register_cameras

TARGET_RATIO = 1.5
GRACE_SECONDS = 1.0
POLL_SECONDS = 0.5  # the service's task poll (its default)
LOOK_SECONDS = 0.05  # this script's own look at the manager
LIMITS = {"cpus": "0.25", "memory": "64m", "reserve_cpus": "0.05", "reserve_memory": "64m"}


class Looker:
    """Polls the manager every 50 ms: when each service (by name) was first seen with a
    running task, and when the run's services were last all gone."""

    def __init__(self, url: str, instance: str) -> None:
        self.api = docker.APIClient(base_url=url, timeout=30)
        self.instance = instance
        self.first_running: dict[str, float] = {}
        self.none_left_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _look(self) -> None:
        now = time.monotonic()
        services = [
            s
            for s in self.api.services()
            if (s["Spec"].get("Labels") or {}).get(INSTANCE_LABEL) == self.instance
            or (s["Spec"].get("Labels") or {}).get(TEST_LABEL) == self.instance
        ]
        names = {s["ID"]: s["Spec"]["Name"] for s in services}
        for task in self.api.tasks():
            name = names.get(task["ServiceID"])
            if name and task["Status"]["State"] == "running":
                self.first_running.setdefault(name, now)
        self.none_left_at = None if services else self.none_left_at or now

    def _run(self) -> None:
        while not self._stop.is_set():
            self._look()
            self._stop.wait(LOOK_SECONDS)

    async def running(self, name: str, since: float, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while name not in self.first_running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not running within {timeout} s")
            await asyncio.sleep(0.01)
        return self.first_running[name] - since

    def __enter__(self) -> Looker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.api.close()


def cli_create(cluster: SwarmCluster, image: str, name: str, run_id: str) -> None:
    label, wanted = cluster.worker_label
    subprocess.run(
        [
            "docker", "-H", cluster.manager_url, "service", "create", "--detach", "--quiet",
            "--no-resolve-image", "--name", name, "--replicas", "1",
            "--restart-condition", "none", "--endpoint-mode", "dnsrr", "--init",
            "--limit-cpu", LIMITS["cpus"], "--limit-memory", LIMITS["memory"],
            "--reserve-cpu", LIMITS["reserve_cpus"], "--reserve-memory", LIMITS["reserve_memory"],
            "--constraint", f"node.labels.{label}=={wanted}", "--network", cluster.network,
            "--label", f"{TEST_LABEL}={run_id}", image,
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def sdk_create(cluster: SwarmCluster, image: str, name: str, run_id: str) -> None:
    """The same service through the SDK (no CLI process, no secret)."""
    label, wanted = cluster.worker_label
    mib = 1024**2
    template = TaskTemplate(
        ContainerSpec(image, init=True),
        resources=Resources(
            cpu_limit=250_000_000, mem_limit=64 * mib, cpu_reservation=50_000_000,
            mem_reservation=64 * mib,
        ),
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=[f"node.labels.{label}=={wanted}"]),
        networks=[NetworkAttachmentConfig(cluster.network)],
    )  # fmt: skip
    cluster.client().api.create_service(
        template,
        name=name,
        labels={TEST_LABEL: run_id},
        mode=ServiceMode("replicated", 1),
        endpoint_spec=EndpointSpec(mode="dnsrr"),
    )


async def reserve(http: httpx.AsyncClient, camera_id: str) -> str:
    body = {"camera_id": camera_id, "user_id": "bench", "source": "BENCH"}
    answer = await http.post("/api/v1/stream/reserve", json=body, headers=ADMIN_HEADERS)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["reservation_id"])


def line(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"  {name:<44} n={len(ms):<3} p50={percentile(ms, 50):7.1f} ms  "
        f"p95={percentile(ms, 95):7.1f} ms  mean={statistics.fmean(ms):7.1f} ms"
    )


async def bench(valkey_url: str, tmp: Path, cameras: int, cluster: SwarmCluster) -> None:
    image = cluster.images[0]
    run_id = f"bench-{uuid.uuid4().hex[:6]}"
    label, wanted = cluster.worker_label
    ids = [f"bench-{i:02d}" for i in range(cameras + 1)]  # the first is the warm-up
    await register_cameras(valkey_url, *ids)
    service = bench_service(
        valkey_url,
        tmp,
        ready_path="/ready",
        CCTV_RUNTIME="swarm",
        DOCKER_HOST=cluster.manager_url,
        CCTV_INSTANCE=run_id,
        CCTV_PUSHERS_ENABLED="true",
        CCTV_PUSHER_IMAGE=image,
        CCTV_PUSHER_NETWORK=cluster.network,
        CCTV_PUSHER_CPUS=LIMITS["cpus"],
        CCTV_PUSHER_MEMORY=LIMITS["memory"],
        CCTV_SWARM_RESERVE_CPUS=LIMITS["reserve_cpus"],
        CCTV_SWARM_RESERVE_MEMORY=LIMITS["reserve_memory"],
        CCTV_SWARM_CONSTRAINTS=f'["node.labels.{label}=={wanted}"]',
        CCTV_SWARM_POLL_SECONDS=str(POLL_SECONDS),
        CCTV_DRAIN_GRACE_SECONDS=str(GRACE_SECONDS),
        CCTV_LEASE_SECONDS="600",
        CCTV_WHIP_URL="http://127.0.0.1:9/whip",
        CCTV_WHIP_TOKEN="bench-token",
    )
    ours: list[float] = []
    cli: list[float] = []
    sdk: list[float] = []
    await asyncio.to_thread(service.start)
    try:
        with Looker(cluster.manager_url, run_id) as looker:
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
                rids = []
                for i, camera_id in enumerate(ids):
                    t0 = time.monotonic()
                    rids.append(await reserve(http, camera_id))
                    took = await looker.running(f"whip-pusher-{camera_id}", t0)
                    t0 = time.monotonic()
                    await asyncio.to_thread(cli_create, cluster, image, f"cli-{i:02d}", run_id)
                    cli_took = await looker.running(f"cli-{i:02d}", t0)
                    t0 = time.monotonic()
                    await asyncio.to_thread(sdk_create, cluster, image, f"sdk-{i:02d}", run_id)
                    sdk_took = await looker.running(f"sdk-{i:02d}", t0)
                    if i:  # the first of each is the warm-up
                        ours.append(took)
                        cli.append(cli_took)
                        sdk.append(sdk_took)
                baselines = [f"{kind}-{i:02d}" for kind in ("cli", "sdk") for i in range(len(ids))]
                await asyncio.gather(*(cli_remove(cluster, name) for name in baselines))
                await asyncio.gather(
                    *(
                        http.delete(f"/api/v1/stream/release/{r}", headers=ADMIN_HEADERS)
                        for r in rids
                    )
                )
                released = time.monotonic()
                while looker.none_left_at is None and time.monotonic() - released < 60:
                    await asyncio.sleep(0.05)
                gone = (looker.none_left_at or float("nan")) - released
        ratio_50 = percentile(ours, 50) / percentile(cli, 50)
        ratio_95 = percentile(ours, 95) / percentile(cli, 95)
        print(f"first-viewer start on a 3-node Swarm, {cameras} cameras one at a time:")
        print(line("orchestrator: reserve -> task running", ours))
        print(line("docker service create -> task running", cli))
        print(line("SDK create_service -> task running", sdk))
        print(
            f"  ratio to the CLI: p50 {ratio_50:.2f}, p95 {ratio_95:.2f} (target <= {TARGET_RATIO})"
        )
        print(
            f"  ratio to the SDK: p50 {percentile(ours, 50) / percentile(sdk, 50):.2f}, "
            f"p95 {percentile(ours, 95) / percentile(sdk, 95):.2f}"
        )
        target = GRACE_SECONDS + POLL_SECONDS + 2
        print(
            f"teardown: {len(rids)} releases at once -> no service left {gone:.2f} s "
            f"(target: grace {GRACE_SECONDS:g} + poll {POLL_SECONDS:g} + 2 = {target:g} s)"
        )
    finally:
        await asyncio.to_thread(service.stop)
        remove_run(cluster, run_id)


async def cli_remove(cluster: SwarmCluster, name: str) -> None:
    await asyncio.to_thread(
        subprocess.run,
        ["docker", "-H", cluster.manager_url, "service", "rm", name],
        capture_output=True,
    )


def remove_run(cluster: SwarmCluster, run_id: str) -> None:
    api: Any = cluster.client().api
    for service in api.services():
        labels = service["Spec"].get("Labels") or {}
        if run_id in (labels.get(INSTANCE_LABEL), labels.get(TEST_LABEL)) or labels.get(
            CAMERA_LABEL, ""
        ).startswith("bench-"):
            api.remove_service(service["ID"])


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--cameras", type=int, default=20)
    args = parser.parse_args()
    cluster = SwarmCluster()
    cluster.start(images=[build_placeholder_pusher_image()])
    print(f"cluster built in {cluster.build_seconds:.2f} s at {cluster.manager_url}")
    try:
        run_on_valkey(
            lambda url, tmp: bench(url, tmp, args.cameras, cluster),
            asyncio.run,
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
