"""Pushers on a real multi-node Docker Swarm, through real ``serve`` processes
(``CCTV_RUNTIME=swarm``) and a real Valkey, on the session's test cluster (a drained manager
and two workers labelled for pushers, in network namespaces of this machine).

The service talks to the manager's API only. Every poll of this module reads the manager
too (a thread, every 100 ms): how many services and running tasks each camera has. Each test
runs its pushers under a deployment instance of its own and removes what is left of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.containers import (
    CAMERA_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PusherSpec,
)
from orchestrator.domain.ids import publisher_identity, room_name
from orchestrator.runtime.swarm_engine import SwarmEngine, SwarmOptions
from orchestrator.runtime.swarm_runtime import SwarmRuntime
from orchestrator.store.embedded import EmbeddedValkey
from tests.cluster.swarm import SwarmCluster
from tests.harness.http import admit, camera_stats, put_camera, release
from tests.harness.images import build_placeholder_pusher_image
from tests.harness.livekit import NewStack
from tests.harness.metrics import scrape, value
from tests.harness.service import ServiceProcess, running
from tests.harness.store import register_cameras
from tests.harness.swarm import (
    GRACE_S,
    POLL_S,
    RECONCILE_S,
    STATIC_WHIP,
    TaskPoller,
    holds,
    remove_instance,
    swarm_env,
)
from tests.harness.waiting import eventually

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def placeholder_image(swarm_cluster: SwarmCluster) -> str:
    tag = build_placeholder_pusher_image()
    assert tag in swarm_cluster.images
    return tag


async def reserve(http: Any, camera_id: str, user: str = "op") -> str:
    return str((await admit(http, camera_id, user=user))["reservation_id"])


async def test_30_cameras_by_2_viewers_give_30_services_one_task_each_over_both_workers(
    swarm_cluster: SwarmCluster, new_stack: NewStack, swarm_whip_image: str, swarm_instance: str
) -> None:
    ids = [f"sw-{i:02d}" for i in range(30)]
    env = swarm_env(swarm_cluster, swarm_whip_image, swarm_instance)
    secret_rtsp = "rtsp://viewer:cam-password-9d2f@10.0.0.1/sw-00"
    async with new_stack(env, cameras=ids, host=swarm_cluster.host_address) as st:
        await put_camera(st.http, "sw-00", secret_rtsp)
        with TaskPoller(swarm_cluster, swarm_instance) as poller:
            rids = await asyncio.gather(
                *(reserve(st.http, ids[i % 30], f"u{i}") for i in range(60))
            )
            took = await eventually(
                holds(lambda: poller.one_running_each(ids)),
                120,
                "30 services, each with one running task",
                interval=0.1,
            )
            workers = {swarm_cluster.node(name).id for name in swarm_cluster.worker_names}
            used = {node for c in ids for node in poller.running[c]}
            print(f"30 cameras running on the Swarm {took:.2f} s after the reserves; nodes {used}")
            assert used == workers, "the tasks are spread over both workers"

            async def published() -> bool:  # each pusher reached the fake's WHIP over the link
                return all(
                    publisher_identity(c)
                    in {p.identity for p in st.fake.participants(room_name(c))}
                    for c in ids
                )

            await eventually(published, 60, "every camera's publisher in its LiveKit room")
            await assert_no_secret_in_specs(swarm_cluster, swarm_instance, st, secret_rtsp)

            released_at = time.monotonic()
            await asyncio.gather(*(release(st.http, rid) for rid in rids))
            await eventually(
                holds(lambda: poller.emptied_at is not None),
                60,
                "every service removed after the releases",
                interval=0.1,
            )
            assert poller.emptied_at is not None
            gone = poller.emptied_at - released_at
            # The figure against its target; the bound asserted is liveness (see
            # docs/benchmarks.md for the measured figures).
            print(
                f"every service gone {gone:.2f} s after the releases "
                f"(target: grace + poll + 2 s = {GRACE_S + POLL_S + 2:.1f} s)"
            )
        stats = (await st.http.get("/api/v1/stream/stats")).json()
        assert stats["total_reserved"] == 0
    assert poller.polls > 20
    assert poller.most_services == 1, "a camera had two services"
    assert poller.most_running == 1, "a poll saw two running tasks for one camera"


async def assert_no_secret_in_specs(
    cluster: SwarmCluster, swarm_instance: str, st: Any, rtsp_url: str
) -> None:
    """Neither the camera's credentials nor a WHIP stream key appear in a service or task
    spec: they travel in a Swarm secret (whose content the API never shows)."""
    api = cluster.client().api
    mine = {"label": f"{INSTANCE_LABEL}={swarm_instance}"}
    specs = json.dumps([api.services(filters=mine), api.tasks(), api.secrets(filters=mine)])
    keys = [i.stream_key for i in st.fake.ingresses().values()]
    assert keys and "cam-password-9d2f" not in specs and rtsp_url not in specs
    assert not [k for k in keys if k in specs], "a stream key is in a spec"
    assert "/run/secrets/pusher.env" in specs


async def test_300_concurrent_first_viewers_over_3_processes_one_service_one_task(
    swarm_cluster: SwarmCluster,
    placeholder_image: str,
    swarm_instance: str,
    valkey_url: str,
    client: object,
    tmp_path: Path,
) -> None:
    await register_cameras(valkey_url, "sw-race")
    env = swarm_env(
        swarm_cluster,
        placeholder_image,
        swarm_instance,
        CCTV_LIVEKIT_ENABLED="false",
        **STATIC_WHIP,
    )
    procs = [ServiceProcess(f"orch-{i}", tmp_path, valkey_url, env) for i in range(3)]
    async with running(*procs):
        with TaskPoller(swarm_cluster, swarm_instance) as poller:
            https = [p.http for p in procs]
            rids = await asyncio.gather(
                *(reserve(https[i % 3], "sw-race", f"u{i}") for i in range(300))
            )
            assert len(set(rids)) == 300
            await eventually(
                holds(lambda: poller.one_running_each(["sw-race"])),
                60,
                "sw-race's service with its one running task",
                interval=0.1,
            )
            await asyncio.sleep(3 * RECONCILE_S)  # passes of all three processes run meanwhile
            stats = await camera_stats(https[2], "sw-race")
            assert (stats["reserved_count"], stats["generation"]) == (300, 1)
            assert poller.one_running_each(["sw-race"])
    assert poller.polls > 20
    assert (poller.most_services, poller.most_running) == (1, 1), "two at one poll"


@contextlib.asynccontextmanager
async def own_valkey(tmp: Path) -> AsyncIterator[str]:
    """A second deployment's own Valkey."""
    server = EmbeddedValkey(tmp)
    await asyncio.to_thread(server.start)
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


async def test_two_deployments_share_the_cluster_and_never_touch_each_others_pushers(
    swarm_cluster: SwarmCluster,
    placeholder_image: str,
    valkey_url: str,
    client: object,
    tmp_path: Path,
) -> None:
    blue_name, green_name = (f"t-{uuid.uuid4().hex[:6]}-{c}" for c in ("blue", "green"))
    blue_ids, green_ids = ["bl-1", "bl-2", "shared"], ["gr-1", "gr-2"]
    try:
        async with own_valkey(tmp_path / "green-valkey") as green_url:
            await register_cameras(valkey_url, *blue_ids)
            await register_cameras(green_url, *green_ids, "shared")
            envs = [
                swarm_env(swarm_cluster, placeholder_image, name, CCTV_LIVEKIT_ENABLED="false",
                          **STATIC_WHIP)
                for name in (blue_name, green_name)
            ]  # fmt: skip
            blue = ServiceProcess("blue", tmp_path, valkey_url, envs[0])
            green = ServiceProcess("green", tmp_path, green_url, envs[1])
            async with running(blue, green):
                with (
                    TaskPoller(swarm_cluster, blue_name) as b,
                    TaskPoller(swarm_cluster, green_name) as g,
                ):
                    for http, ids, poller in ((blue.http, blue_ids, b), (green.http, green_ids, g)):
                        for camera_id in ids:
                            await reserve(http, camera_id)
                        await eventually(
                            holds(partial(poller.one_running_each, ids)),
                            60,
                            f"{ids} running",
                            interval=0.1,
                        )
                    before = service_ids(swarm_cluster)
                    # green's viewer of a camera whose service name blue holds: refused there
                    await reserve(green.http, "shared")
                    passes = [await reconcile_passes(s.http) for s in (blue, green)]

                    async def three_more_passes() -> bool:
                        now = [await reconcile_passes(s.http) for s in (blue, green)]
                        return all(n >= p + 3 for n, p in zip(now, passes, strict=True))

                    await eventually(three_more_passes, 60, "3 reconcile passes in each")
                    after = service_ids(swarm_cluster)
                    shared = await camera_stats(green.http, "shared")
        assert after == before, "a service was removed, replaced or added across deployments"
        assert b.one_running_each(blue_ids) and g.one_running_each(green_ids)
        assert (b.most_services, b.most_running, g.most_services, g.most_running) == (1,) * 4
        assert g.services["shared"] == 0, "green adopted blue's pusher"
        assert "another deployment" in (shared["last_error"] or ""), shared
    finally:
        remove_instance(swarm_cluster, blue_name)
        remove_instance(swarm_cluster, green_name)


def service_ids(cluster: SwarmCluster) -> dict[str, tuple[str, str]]:
    """Every service on the cluster: id -> (name, instance label)."""
    return {
        s["ID"]: (s["Spec"]["Name"], (s["Spec"].get("Labels") or {}).get(INSTANCE_LABEL, ""))
        for s in cluster.client().api.services()
    }


async def reconcile_passes(http: Any) -> float:
    return value(await scrape(http), "cctv_loop_passes_total", loop="reconcile")


async def test_a_pusher_on_a_worker_that_dies_comes_back_on_the_other_worker(
    swarm_cluster: SwarmCluster,
    placeholder_image: str,
    swarm_instance: str,
    valkey_url: str,
    client: object,
    tmp_path: Path,
) -> None:
    """A dead node's task keeps reporting ``running``; the service reads the node as down,
    counts the pusher lost and starts the next generation where it can run."""
    await register_cameras(valkey_url, "sw-node")
    env = swarm_env(
        swarm_cluster,
        placeholder_image,
        swarm_instance,
        CCTV_LIVEKIT_ENABLED="false",
        **STATIC_WHIP,
    )
    async with ServiceProcess("orch", tmp_path, valkey_url, env) as proc:
        with TaskPoller(swarm_cluster, swarm_instance) as poller:
            await reserve(proc.http, "sw-node")
            await eventually(holds(partial(poller.one_running_each, ["sw-node"])), 60, "running")
            (node_id,) = poller.running["sw-node"]
            ids = {swarm_cluster.node(name).id: name for name in swarm_cluster.worker_names}
            victim = ids.pop(node_id)
            (survivor,) = ids
            killed_at = time.monotonic()
            swarm_cluster.kill_node(victim)
            try:

                async def moved() -> bool:
                    stats = await camera_stats(proc.http, "sw-node")
                    on_survivor = survivor in poller.running.get("sw-node", [])
                    return on_survivor and (stats["pusher_state"], stats["generation"]) == (
                        "RUNNING",
                        2,
                    )

                await eventually(moved, 60, "the pusher running again on the other worker")
                print(f"pusher back on the other worker {time.monotonic() - killed_at:.2f} s after")
                assert poller.services["sw-node"] == 1
            finally:
                swarm_cluster.start_node(victim)
                swarm_cluster.wait_ready_nodes(60)
            # Back up, the node stops what it ran before it died: one running task again.
            await eventually(
                holds(lambda: poller.running.get("sw-node") == [survivor]),
                60,
                "only the new task running once the node is back",
            )
            stats = await camera_stats(proc.http, "sw-node")
            assert (stats["reserved_count"], stats["restarts"]) == (1, 1)


async def test_a_pusher_as_nobody_reads_its_secret_env_and_a_64_character_id_runs(
    swarm_cluster: SwarmCluster, placeholder_image: str, swarm_instance: str
) -> None:
    """Through the adapter alone: the env file is the pusher's to read (the real image runs
    as nobody, like the placeholder), and an id that is no valid service or secret name as it
    is (upper case, a dot, 64 characters) still gets its pusher; its logs come back raw."""
    label, wanted = swarm_cluster.worker_label
    runtime = SwarmRuntime(
        swarm_cluster.manager_url,
        stop_timeout_seconds=5,
        instance=swarm_instance,
        options=SwarmOptions(constraints=[f"node.labels.{label}=={wanted}"]),
    )
    camera_id = "Cam." + "x" * 60
    spec = PusherSpec(
        camera_id,
        1,
        placeholder_image,
        env={"RTSP_URL": "rtsp://u:long-id-pw-77@10.0.0.1/s", "CAMERA_ID": camera_id},
        instance=swarm_instance,
        network=swarm_cluster.network,
        memory_bytes=64 * 1024**2,
        cpus=0.25,
    )
    try:
        made = await runtime.create_and_start(spec)

        async def read_and_running() -> bool:
            found = await runtime.get(camera_id)
            return bool(found and found.running and "env file read" in await runtime.logs(made.ref))

        await eventually(read_and_running, 60, "the pusher running after reading its env file")
        assert "long-id-pw-77" not in await runtime.logs(made.ref)
        await runtime.remove(made.ref)
        assert await runtime.get(camera_id) is None
        secrets = swarm_cluster.client().api.secrets(
            filters={"label": f"{INSTANCE_LABEL}={swarm_instance}"}
        )
        assert secrets == [], "the service's env secret went with it"
    finally:
        await runtime.close()


def test_the_sweep_removes_only_this_instances_unused_secrets(
    swarm_cluster: SwarmCluster, placeholder_image: str, swarm_instance: str
) -> None:
    """A secret left by a crash between it and its service goes; one in use, or another
    deployment's, stays."""
    api = swarm_cluster.client().api
    label, wanted = swarm_cluster.worker_label
    engine = SwarmEngine(
        swarm_cluster.manager_url,
        timeout_seconds=30,
        options=SwarmOptions(constraints=[f"node.labels.{label}=={wanted}"]),
    )
    spec = PusherSpec(
        "sweep-1", 1, placeholder_image, env={"A": "b"}, instance=swarm_instance, network="none"
    )
    used = engine.create(spec, "whip-pusher-sweep-1")
    other = f"{swarm_instance}-other"

    def labels(of: str) -> dict[str, str]:
        return {MANAGED_BY_LABEL: MANAGED_BY, CAMERA_LABEL: "sweep-2", INSTANCE_LABEL: of}

    orphan = api.create_secret(
        f"sweep-orphan-{swarm_instance}", b"A='b'\n", labels=labels(swarm_instance)
    )
    theirs = api.create_secret(f"sweep-theirs-{swarm_instance}", b"A='b'\n", labels=labels(other))
    try:
        assert engine.collect_secrets(swarm_instance) == 0, "young secrets are kept"
        assert engine.collect_secrets(swarm_instance, grace=timedelta(0)) == 1
        left = {s["ID"] for s in api.secrets()}
        assert orphan["ID"] not in left and theirs["ID"] in left
        in_use = api.inspect_service(used.ref)["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
        assert {s["SecretID"] for s in in_use} <= left
        assert engine.remove(used.ref, wait_seconds=20)
        assert not {s["SecretID"] for s in in_use} & {s["ID"] for s in api.secrets()}
    finally:
        api.remove_secret(theirs["ID"])
        engine.close()


async def test_ready_wants_a_manager_a_workers_api_is_not_enough(
    swarm_cluster: SwarmCluster,
) -> None:
    manager = SwarmRuntime(swarm_cluster.manager_url, timeout_seconds=10)
    worker = SwarmRuntime(swarm_cluster.url(swarm_cluster.worker_names[0]), timeout_seconds=10)
    try:
        assert await manager.ping() is True
        assert await worker.ping() is False, "a worker cannot run services"
    finally:
        for runtime in (manager, worker):
            await runtime.close()
