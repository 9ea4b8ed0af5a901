"""The runtime port's contract (``orchestrator/domain/runtime.py``): every adapter passes the
same behaviours. Start; conflict and adopt; the fenced remove; the listing; a death seen; a
re-list after a gap. Each also keeps to its deployment instance and never restarts a pusher.

The suite runs once per :data:`RUNTIMES` entry through a :class:`Rig`: the runtime under test,
a second runtime of another deployment instance on the same engine, and what only the test
side can do to the engine (kill a pusher behind the runtime's back, put something foreign
under a pusher's name, look at a workload without the adapter).

**Adding a runtime** (Swarm next): write an async context manager ``swarm_rig(request)`` that
builds a :class:`Rig` on the cluster fixture (``request.getfixturevalue(...)`` of the fixture
in ``tests/cluster/``), add it to :data:`RIGS`, and add ``pytest.param("swarm",
marks=...)`` to :data:`RUNTIMES`. ``settle_seconds`` bounds every observation (a Swarm task is
polled, so its phase and events lag). Nothing else in this file names a runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from orchestrator.domain.containers import (
    ContainerConflict,
    EventKind,
    Phase,
    PusherSpec,
    RuntimeEvent,
    Workload,
)
from orchestrator.domain.ids import container_name
from orchestrator.domain.runtime import PusherRuntime
from orchestrator.errors import RuntimeRejected
from orchestrator.pusher.placement import create_or_adopt, remove_fenced
from tests.fakes.runtime import FakeEngine, FakeRuntime


@dataclass
class Rig:
    """``runtime`` and ``other`` are two deployment instances on one engine. ``spec`` makes a
    pusher spec of ``runtime``'s instance unless told another (``instance=``)."""

    runtime: PusherRuntime  # the deployment under test
    other: PusherRuntime  # another deployment on the same engine
    spec: Callable[..., PusherSpec]  # (camera_id, generation, instance=...) -> spec
    kill: Callable[[Workload], Awaitable[None]]  # dies behind the runtime's back
    place_foreign: Callable[[str], Awaitable[str]]  # unmanaged holder of the name: its ref
    alive: Callable[[str], Awaitable[bool]]  # the ref runs (seen without the adapter)
    settle_seconds: float


# --- the rigs ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    engine = FakeEngine()
    runtime, other = FakeRuntime(engine), FakeRuntime(engine, "contract-other")

    def spec(camera_id: str, generation: int, instance: str = runtime.instance) -> PusherSpec:
        return PusherSpec(camera_id, generation, "fake:1", instance=instance)

    async def kill(w: Workload) -> None:
        assert w.camera_id is not None
        engine.kill(w.camera_id)

    async def place_foreign(camera_id: str) -> str:
        return engine.place(camera_id, managed=False).ref

    async def alive(ref: str) -> bool:
        return any(w.ref == ref and w.running for w in engine.workloads.values())

    yield Rig(runtime, other, spec, kill, place_foreign, alive, settle_seconds=2.0)


@contextlib.asynccontextmanager
async def docker_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    from orchestrator.runtime import DockerRuntime
    from tests.harness.images import TEST_LABELS

    docker_api: Any = request.getfixturevalue("docker_api")
    image: str = request.getfixturevalue("pusher_image")
    request.getfixturevalue("swept")  # every test container goes after the test
    # Instances of their own: a service of another test session on this engine (whose
    # reconcile pass removes the default instance's orphans) never touches these.
    mine = f"contract-{uuid.uuid4().hex[:8]}"
    runtime = DockerRuntime(timeout_seconds=30, instance=mine)
    other = DockerRuntime(timeout_seconds=30, instance=f"{mine}-other")

    def spec(camera_id: str, generation: int, instance: str = mine) -> PusherSpec:
        return PusherSpec(
            camera_id=camera_id,
            generation=generation,
            image=image,
            instance=instance,
            network="none",
            memory_bytes=64 * 1024**2,
            cpus=0.25,
            extra_labels=TEST_LABELS,
        )

    async def kill(w: Workload) -> None:
        await asyncio.to_thread(docker_api.api.kill, w.ref)

    async def place_foreign(camera_id: str) -> str:
        run = docker_api.containers.run
        name = container_name(camera_id)
        made = await asyncio.to_thread(run, image, name=name, detach=True, network_mode="none")
        return str(made.id)

    async def alive(ref: str) -> bool:
        data = await asyncio.to_thread(docker_api.api.inspect_container, ref)
        return bool(data["State"]["Running"])

    try:
        yield Rig(runtime, other, spec, kill, place_foreign, alive, settle_seconds=10.0)
    finally:
        await runtime.close()
        await other.close()


@contextlib.asynccontextmanager
async def swarm_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    from orchestrator.runtime.swarm_engine import SwarmOptions
    from orchestrator.runtime.swarm_model import service_name
    from orchestrator.runtime.swarm_runtime import SwarmRuntime
    from tests.cluster.swarm import SwarmCluster
    from tests.harness.images import TEST_LABELS, build_placeholder_pusher_image

    cluster: SwarmCluster = request.getfixturevalue("swarm_cluster")
    image = build_placeholder_pusher_image()
    manager = cluster.client()
    mine = f"contract-{uuid.uuid4().hex[:8]}"
    options = SwarmOptions(constraints=[f"node.labels.{cluster.worker_label[0]}==true"])

    def make(instance: str) -> SwarmRuntime:
        return SwarmRuntime(
            cluster.manager_url,
            timeout_seconds=30,
            stop_timeout_seconds=5,
            instance=instance,
            poll_seconds=0.25,
            options=options,
        )

    runtime, other = make(mine), make(f"{mine}-other")

    def spec(camera_id: str, generation: int, instance: str = mine) -> PusherSpec:
        return PusherSpec(
            camera_id=camera_id,
            generation=generation,
            image=image,
            env={"RTSP_URL": "rtsp://user:pw@camera.invalid/s"},
            instance=instance,
            network=cluster.network,
            memory_bytes=64 * 1024**2,
            cpus=0.25,
            extra_labels=TEST_LABELS,
        )

    def task_of(ref: str) -> dict[str, Any] | None:
        tasks = manager.api.tasks(filters={"service": ref})
        return max(tasks, key=lambda t: t["CreatedAt"]) if tasks else None

    async def kill(w: Workload) -> None:  # the container, on its worker, behind our back
        task = await asyncio.to_thread(task_of, w.ref)
        assert task is not None and task["Status"]["State"] == "running", task
        node = next(n.name for n in cluster.nodes() if n.id == task["NodeID"])
        container = task["Status"]["ContainerStatus"]["ContainerID"]
        await asyncio.to_thread(cluster.client(node).api.kill, container)

    async def alive(ref: str) -> bool:
        try:
            task = await asyncio.to_thread(task_of, ref)
        except Exception:
            return False
        return task is not None and task["Status"]["State"] == "running"

    async def place_foreign(camera_id: str) -> str:
        from docker.types import ContainerSpec as Container
        from docker.types import EndpointSpec, RestartPolicy, TaskTemplate

        template = TaskTemplate(Container(image), restart_policy=RestartPolicy(condition="none"))
        made = await asyncio.to_thread(
            manager.api.create_service,
            template,
            name=service_name(camera_id),
            labels=TEST_LABELS,
            endpoint_spec=EndpointSpec(mode="dnsrr"),
        )
        ref = str(made["ID"])
        async with asyncio.timeout(20):
            while not await alive(ref):
                await asyncio.sleep(0.1)
        return ref

    try:
        yield Rig(runtime, other, spec, kill, place_foreign, alive, settle_seconds=20.0)
    finally:
        await runtime.close()
        await other.close()
        services = await asyncio.to_thread(manager.services.list)
        for service in services:  # every test service, ours or foreign
            if (service.attrs["Spec"].get("Labels") or {}).get("cctv.orchestrator.test"):
                await asyncio.to_thread(service.remove)


RIGS: dict[str, Callable[[pytest.FixtureRequest], contextlib.AbstractAsyncContextManager[Rig]]]
RIGS = {"fake": fake_rig, "docker": docker_rig, "swarm": swarm_rig}
RUNTIMES = [
    "fake",
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("swarm", marks=pytest.mark.docker),
]


@pytest.fixture(params=RUNTIMES)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async with RIGS[request.param](request) as made:
        yield made


@pytest.fixture
def cam() -> str:
    return f"ct-{uuid.uuid4().hex[:10]}"


# --- helpers -----------------------------------------------------------------------------------


async def settled(rig: Rig, camera_id: str, *phases: Phase) -> Workload:
    """What holds the camera's name once it is in one of ``phases`` (within the bound)."""
    async with asyncio.timeout(rig.settle_seconds):
        while True:
            found = await rig.runtime.get(camera_id)
            if found is not None and found.phase in phases:
                return found
            await asyncio.sleep(0.1)


async def settled_other(rig: Rig, camera_id: str) -> None:
    """The other deployment's pusher of the camera runs (within the bound)."""
    async with asyncio.timeout(rig.settle_seconds):
        while not ((w := await rig.other.get(camera_id)) is not None and w.running):
            await asyncio.sleep(0.1)


async def running(rig: Rig, camera_id: str, generation: int, **kw: Any) -> Workload:
    made = await rig.runtime.create_and_start(rig.spec(camera_id, generation, **kw))
    return await settled(rig, camera_id, Phase.RUNNING) if not made.running else made


async def events_until(
    runtime: PusherRuntime,
    since: float,
    done: Callable[[RuntimeEvent], bool],
    bound: float,
    started: asyncio.Event | None = None,
) -> list[RuntimeEvent]:
    """The events from ``since`` until one is ``done`` (TimeoutError past ``bound``)."""
    seen: list[RuntimeEvent] = []
    stop = asyncio.Event()
    async with asyncio.timeout(bound):
        async with contextlib.aclosing(runtime.events(stop, since=since)) as events:
            if started is not None:
                started.set()
            async for event in events:
                seen.append(event)
                if done(event):
                    break
    return seen


# --- the contract ------------------------------------------------------------------------------


async def test_start_runs_a_labelled_pusher_under_the_cameras_name(rig: Rig, cam: str) -> None:
    made = await rig.runtime.create_and_start(rig.spec(cam, 3))
    assert made.phase in (Phase.RUNNING, Phase.PENDING)
    assert (made.name, made.camera_id, made.generation) == (container_name(cam), cam, 3)
    assert made.managed and made.owned_by(rig.runtime.instance)
    got = await settled(rig, cam, Phase.RUNNING)
    assert got.ref == made.ref and got.instance == rig.runtime.instance
    assert await rig.alive(made.ref)


async def test_a_taken_name_is_reported_never_replaced_and_ours_is_adopted(
    rig: Rig, cam: str
) -> None:
    first = await running(rig, cam, 3)
    with pytest.raises(ContainerConflict) as raised:
        await rig.runtime.create_and_start(rig.spec(cam, 4))
    holder = raised.value.existing
    assert holder is not None and (holder.ref, holder.generation) == (first.ref, 3)
    assert holder.running and holder.owned_by(rig.runtime.instance)
    adopted = await create_or_adopt(rig.runtime, rig.spec(cam, 4))
    assert adopted.ref == first.ref and await rig.alive(first.ref)


async def test_a_holder_that_is_not_ours_is_refused_and_left_running(rig: Rig, cam: str) -> None:
    foreign = await rig.place_foreign(cam)
    theirs = await rig.other.create_and_start(rig.spec(f"{cam}-b", 1, instance=rig.other.instance))
    for camera_id, ref, whose in (
        (cam, foreign, "not manage"),
        (f"{cam}-b", theirs.ref, "another"),
    ):
        with pytest.raises(ContainerConflict) as raised:
            await rig.runtime.create_and_start(rig.spec(camera_id, 9))
        holder = raised.value.existing
        assert holder is not None and holder.ref == ref
        assert not holder.owned_by(rig.runtime.instance)
        with pytest.raises(RuntimeRejected, match=whose):
            await create_or_adopt(rig.runtime, rig.spec(camera_id, 9))
        assert await remove_fenced(rig.runtime, camera_id, 10**9) is False
    assert await rig.alive(foreign)
    await settled_other(rig, f"{cam}-b")


async def test_the_fenced_remove_never_touches_a_newer_generation(rig: Rig, cam: str) -> None:
    old = await running(rig, cam, 5)
    assert await remove_fenced(rig.runtime, cam, 4) is False
    assert await rig.alive(old.ref)
    assert await remove_fenced(rig.runtime, cam, 5) is True
    assert await rig.runtime.get(cam) is None
    assert await remove_fenced(rig.runtime, cam, 5) is True  # nothing there: fine
    new = await running(rig, cam, 6)
    await rig.runtime.remove(old.ref)  # a stale ref removes nothing else
    assert (await settled(rig, cam, Phase.RUNNING)).ref == new.ref


async def test_the_listing_holds_this_instances_pushers_in_every_phase(rig: Rig, cam: str) -> None:
    live = await running(rig, cam, 2)
    dead = await running(rig, f"{cam}-dead", 1)
    await rig.kill(dead)
    await settled(rig, f"{cam}-dead", Phase.EXITED, Phase.LOST)
    theirs = await rig.other.create_and_start(rig.spec(f"{cam}-b", 1, instance=rig.other.instance))
    foreign = await rig.place_foreign(f"{cam}-f")

    listed = {w.ref: w for w in await rig.runtime.list_managed()}
    assert listed[live.ref].phase is Phase.RUNNING and listed[live.ref].camera_id == cam
    assert listed[dead.ref].stopped and listed[dead.ref].generation == 1
    assert listed[dead.ref].exit_code in (None, 137)
    assert theirs.ref not in listed and foreign not in listed
    assert all(w.owned_by(rig.runtime.instance) for w in listed.values())
    assert theirs.ref in {w.ref for w in await rig.other.list_managed()}


async def test_a_death_is_seen_and_never_restarted(rig: Rig, cam: str) -> None:
    ours = await running(rig, cam, 7)
    theirs = await rig.other.create_and_start(rig.spec(f"{cam}-b", 1, instance=rig.other.instance))
    await settled_other(rig, f"{cam}-b")
    subscribed = asyncio.Event()

    def ours_ended(event: RuntimeEvent) -> bool:
        return event.ref == ours.ref and event.kind is EventKind.ENDED

    watch = asyncio.create_task(
        events_until(rig.runtime, time.time(), ours_ended, rig.settle_seconds, subscribed)
    )
    await subscribed.wait()
    await asyncio.sleep(0.5)  # usually after the stream is up; ``since`` covers it if not
    await rig.kill(theirs)
    await rig.kill(ours)
    seen = await watch
    ended = seen[-1]
    assert (ended.camera_id, ended.generation) == (cam, 7)
    assert ended.exit_code in (None, 137)
    assert theirs.ref not in {e.ref for e in seen}, "another deployment's events leaked"
    await asyncio.sleep(1.0)
    after = await settled(rig, cam, Phase.EXITED, Phase.LOST)
    assert after.ref == ours.ref and not await rig.alive(ours.ref), "restarted on its own"


async def test_a_death_during_a_gap_is_found_on_resume(rig: Rig, cam: str) -> None:
    ours = await running(rig, cam, 2)
    since = time.time()
    await rig.kill(ours)  # nobody watches
    await settled(rig, cam, Phase.EXITED, Phase.LOST)

    def found(event: RuntimeEvent) -> bool:
        return event.kind is EventKind.RELIST or (
            event.ref == ours.ref and event.kind is EventKind.ENDED
        )

    seen = await events_until(rig.runtime, since, found, rig.settle_seconds)
    assert found(seen[-1])
    listed = {w.ref: w for w in await rig.runtime.list_managed()}
    assert listed[ours.ref].stopped
