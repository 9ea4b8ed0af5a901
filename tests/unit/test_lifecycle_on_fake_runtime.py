"""The lifecycle, the reconcile pass and the watcher on the fake runtime: every decision about
the holder of a name, the generation fence, stale claims and restarts, in milliseconds.

The pusher state is the real one (the Lua scripts on the session's Valkey); only the runtime
is fake (``tests/fakes/runtime.py``). Time moves by the stores' clock offsets, never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from orchestrator.config import Settings
from orchestrator.domain.backoff import RestartPolicy
from orchestrator.domain.containers import EventKind, Phase, PusherSpec, RuntimeEvent, Workload
from orchestrator.domain.models import Camera
from orchestrator.domain.runtime import PusherRuntime
from orchestrator.errors import RuntimeRejected, RuntimeUnavailable, StoreUnavailable
from orchestrator.metrics import ServiceMetrics
from orchestrator.pusher.lifecycle import Lifecycle
from orchestrator.pusher.placement import remove_fenced
from orchestrator.pusher.spec_factory import SpecFactory, StaticTarget
from orchestrator.reconcile.container_events import EventWatcher
from orchestrator.reconcile.containers import Reconciler
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.pushers import PusherStore
from orchestrator.store.reservations import ReservationStore
from orchestrator.store.scripts import Scripts
from tests.fakes.runtime import FakeEngine, FakeRuntime
from tests.harness.store import add_cameras, release_by_id

CAM = "cam-1"
CLAIM_MS = 30_000


@dataclass
class World:
    engine: FakeEngine
    runtime: FakeRuntime
    lifecycle: Lifecycle
    store: ReservationStore
    registry: CameraRegistry
    metrics: CollectorRegistry
    running: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def pushers(self) -> PusherStore:
        return self.lifecycle.pushers

    def later(self, ms: int) -> None:
        """Move this replica's clock forward (leases, claims, retry times)."""
        self.store.clock_offset_ms += ms
        self.pushers.clock_offset_ms += ms

    def replica(self, owner: str, ahead_ms: int = 0) -> Lifecycle:
        """Another replica on the same Valkey and engine, ``ahead_ms`` in the future."""
        pushers = PusherStore(
            self.pushers._client,
            self.pushers._scripts,
            owner=owner,
            claim_ms=CLAIM_MS,
            restart=self.pushers.restart,
            clock_offset_ms=self.pushers.clock_offset_ms + ahead_ms,
        )
        mine = self.lifecycle
        return Lifecycle(pushers, self.runtime, self.registry, mine.specs, mine.targets)

    async def claimed(self, camera_id: str = CAM) -> tuple[int, str]:
        """A first viewer: the claim's generation and the reservation id."""
        admission = await self.store.reserve(camera_id, "METRO", "operator-1")
        assert admission.claimed
        return admission.generation, admission.reservation_id

    async def running_pusher(self, camera_id: str = CAM) -> tuple[int, str]:
        generation, rid = await self.claimed(camera_id)
        await self.lifecycle.start(camera_id, generation)
        view = await self.pushers.view(camera_id)
        assert view.state == "RUNNING" and view.container_id is not None
        return generation, rid

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def world(
    client: Redis, scripts: Scripts, store: ReservationStore, registry: CameraRegistry
) -> World:
    await add_cameras(registry, CAM, "cam-2")
    settings = Settings(whip_url="http://127.0.0.1:9/whip", pusher_image="fake-pusher:1")
    restart = RestartPolicy(initial_seconds=1.0, max_seconds=60.0, jitter_seconds=0.0)
    pushers = PusherStore(client, scripts, owner="test-owner", claim_ms=CLAIM_MS, restart=restart)
    engine = FakeEngine()
    runtime = FakeRuntime(engine)
    metrics = CollectorRegistry()
    lifecycle = Lifecycle(
        pushers,
        runtime,
        registry,
        SpecFactory(settings),
        StaticTarget(settings),
        ServiceMetrics(metrics, runtime=runtime.kind),
    )
    w = World(engine, runtime, lifecycle, store, registry, metrics)
    lifecycle.on_running = lambda *args: w.running.append(args)
    return w


def test_the_fake_is_a_runtime() -> None:
    runtime: PusherRuntime = FakeRuntime(FakeEngine())  # mypy checks the port
    assert runtime.kind == "fake"


# --- start: create, adopt, clear, refuse ----------------------------------------------------


async def test_start_creates_the_pusher_and_marks_it_running(world: World) -> None:
    generation, _ = await world.running_pusher()
    (pusher,) = world.engine.workloads.values()
    spec = world.engine.specs[pusher.ref]
    assert (pusher.name, pusher.generation, pusher.instance) == ("whip-pusher-cam-1", 1, "default")
    assert spec.labels()["cctv.orchestrator/instance"] == "default" and spec.cpus == 1.0
    assert spec.memory_bytes == 256 * 1024**2 and spec.env["RTSP_URL"].startswith("rtsp://")
    assert world.running == [(CAM, generation, pusher.ref)]
    assert world.sample("cctv_pusher_starts_total", result="running") == 1


@pytest.mark.parametrize("holder_generation", [0, 1, 5], ids=["older", "same", "newer"])
async def test_a_running_pusher_of_ours_is_adopted_never_replaced(
    world: World, holder_generation: int
) -> None:
    holder = world.engine.place(CAM, generation=holder_generation)
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    view = await world.pushers.view(CAM)
    assert (view.state, view.container_id) == ("RUNNING", holder.ref)
    assert world.engine.removed == [] and world.engine.calls.count("create") == 1


@pytest.mark.parametrize(
    ("place", "error"),
    [
        ({"managed": False}, "something we do not manage"),
        ({"instance": "other"}, "another deployment"),
        ({"generation": 9, "phase": Phase.EXITED, "exit_code": 1}, "newer generation"),
        ({"generation": 9, "phase": Phase.PENDING}, "newer generation"),
    ],
    ids=["unmanaged", "other-deployment", "newer-exited", "newer-pending"],
)
async def test_a_holder_that_is_not_ours_or_newer_is_refused_and_left_alone(
    world: World, place: dict[str, Any], error: str
) -> None:
    holder = world.engine.place(CAM, **place)
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    view = await world.pushers.view(CAM)
    assert view.state == "FAILED" and error in (view.last_error or "")
    assert view.last_error is not None and view.last_error.startswith("RuntimeRejected")
    assert world.engine.workloads[holder.name] == holder and world.engine.removed == []
    assert world.sample("cctv_pusher_starts_total", result="failed") == 1


@pytest.mark.parametrize(
    "place",
    [
        {"generation": 0, "phase": Phase.EXITED, "exit_code": 137},
        {"generation": 1, "phase": Phase.LOST},
        {"generation": None, "phase": Phase.PENDING},  # no generation label counts as 0
    ],
    ids=["older-exited", "same-lost", "unlabelled-pending"],
)
async def test_a_stopped_holder_of_ours_not_newer_is_cleared_then_created(
    world: World, place: dict[str, Any]
) -> None:
    holder = world.engine.place(CAM, **place)
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    view = await world.pushers.view(CAM)
    assert view.state == "RUNNING" and view.container_id != holder.ref
    assert world.engine.removed == [holder.ref]


async def test_a_displaced_holder_is_cleared_without_waiting_for_its_node(world: World) -> None:
    holder = world.engine.place(CAM, phase=Phase.LOST, displaced=True)  # its node drains it
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    assert (await world.pushers.view(CAM)).state == "RUNNING"
    assert world.engine.removed == [holder.ref]
    assert "remove without waiting" in world.engine.calls


async def test_a_holder_that_vanished_before_it_was_read_is_created_again(world: World) -> None:
    world.engine.place(CAM, phase=Phase.EXITED)
    world.engine.vanish_on_conflict = True
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    assert (await world.pushers.view(CAM)).state == "RUNNING"
    assert world.engine.calls.count("create") == 2 and world.engine.removed == []


async def test_a_name_that_stays_taken_fails_the_start_after_the_retries(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def keeps_it(ref: str, *, wait: bool = True) -> None:
        world.engine.calls.append("remove")

    monkeypatch.setattr(world.runtime, "remove", keeps_it)
    world.engine.place(CAM, generation=0, phase=Phase.EXITED)
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    view = await world.pushers.view(CAM)
    assert view.state == "FAILED" and "stayed taken" in (view.last_error or "")
    assert world.engine.calls.count("create") == 6  # 2 per attempt, 3 attempts
    assert world.sample("cctv_dependency_errors_total", dependency="fake") == 1


async def test_an_engine_blip_is_retried_and_a_down_engine_fails_the_start(world: World) -> None:
    world.engine.fail("create", RuntimeUnavailable("blip", runtime="fake"), times=2)
    await world.running_pusher()
    world.engine.fail("create", RuntimeUnavailable("down", runtime="fake"), times=3)
    generation, _ = await world.claimed("cam-2")
    await world.lifecycle.start("cam-2", generation)
    assert (await world.pushers.view("cam-2")).state == "FAILED"
    assert world.sample("cctv_dependency_errors_total", dependency="fake") == 1


async def test_a_rejected_create_fails_at_once_without_retries(world: World) -> None:
    world.engine.fail("create", RuntimeRejected("no such image"))
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    view = await world.pushers.view(CAM)
    assert view.state == "FAILED" and "no such image" in (view.last_error or "")
    assert world.engine.calls == ["create"]


@pytest.mark.parametrize("change", ["deleted", "disabled"])
async def test_a_camera_deleted_or_disabled_after_the_claim_fails_its_start(
    world: World, change: str
) -> None:
    generation, _ = await world.claimed()
    if change == "deleted":
        await world.registry.delete(CAM)
    else:
        await world.registry.put(Camera(CAM, "Camera 1", "rtsp://10.0.0.1/x", enabled=False))
    await world.lifecycle.start(CAM, generation)
    view = await world.pushers.view(CAM)
    assert view.state == "FAILED" and "Camera" in (view.last_error or "")
    assert world.engine.calls == []


async def test_a_store_outage_leaves_the_claim_to_expire(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(camera_id: str) -> None:
        raise StoreUnavailable("valkey down")

    generation, _ = await world.claimed()
    monkeypatch.setattr(world.registry, "get", down)
    with pytest.raises(StoreUnavailable):
        await world.lifecycle.start(CAM, generation)
    assert (await world.pushers.view(CAM)).state == "STARTING"


# --- stale claims -----------------------------------------------------------------------------


def hook(world: World, action: Callable[[], Awaitable[object]]) -> None:
    """Run ``action`` while the create is in flight (after the pusher appeared)."""

    async def on_create(spec: PusherSpec) -> None:
        await action()

    world.engine.on_create = on_create


async def test_a_claim_taken_over_mid_start_leaves_the_pusher_to_the_new_owner(
    world: World,
) -> None:
    other = world.replica("other-owner", ahead_ms=CLAIM_MS + 1_000)  # our claim expired there
    taken: list[int | None] = []
    hook(world, lambda: _claim(taken, other))
    generation, _ = await world.claimed()
    await world.lifecycle.start(CAM, generation)
    assert taken == [generation + 1]
    (pusher,) = world.engine.workloads.values()
    assert world.engine.removed == [] and world.running == []
    assert world.sample("cctv_pusher_starts_total", result="stale") == 1
    world.engine.on_create = None
    await other.start(CAM, generation + 1)  # the new owner adopts what our start created
    view = await other.pushers.view(CAM)
    assert (view.state, view.generation, view.container_id) == ("RUNNING", 2, pusher.ref)


async def _claim(taken: list[int | None], other: Lifecycle) -> None:
    taken.append(await other.pushers.claim(CAM))


async def test_a_camera_stopped_mid_start_loses_the_pusher_this_start_made(
    world: World,
) -> None:
    other = world.replica("stopper")
    generation, rid = await world.claimed()

    async def viewer_leaves_and_another_replica_stops() -> None:
        await release_by_id(world.store, rid)
        assert await other.pushers.begin_stop(CAM, force=True) == generation

    hook(world, viewer_leaves_and_another_replica_stops)
    await world.lifecycle.start(CAM, generation)
    assert world.engine.workloads == {} and len(world.engine.removed) == 1
    assert (await world.pushers.view(CAM)).state == "STOPPING"  # the stopper reports it


# --- stop: the generation fence -------------------------------------------------------------


async def test_stop_removes_the_pusher_and_a_returning_viewer_gets_the_next_one(
    world: World,
) -> None:
    generation, rid = await world.running_pusher()
    (first,) = world.engine.workloads.values()
    await release_by_id(world.store, rid)
    stop_generation = await world.pushers.begin_stop(CAM, force=True)
    assert stop_generation == generation
    await world.store.reserve(CAM, "METRO", "operator-2")  # back while it stops
    await world.lifecycle.stop(CAM, generation)
    (second,) = world.engine.workloads.values()
    view = await world.pushers.view(CAM)
    assert world.engine.removed == [first.ref] and second.generation == generation + 1
    assert (view.state, view.container_id) == ("RUNNING", second.ref)


async def test_the_drain_timer_stops_the_pusher_once_the_grace_is_over(world: World) -> None:
    """No tick runs here: the release's timer alone stops the pusher (a burst of releases
    tears down together instead of waiting for the next tick)."""
    _, rid = await world.running_pusher()
    (pusher,) = world.engine.workloads.values()
    released = await release_by_id(world.store, rid)
    assert released.drain_deadline_ms > 0
    world.later(world.store.policy.drain_grace_ms + 1)  # the grace is over (Valkey's clock)
    world.lifecycle.on_drain(CAM, 0.0)
    for _ in range(200):
        if world.engine.removed:
            break
        await asyncio.sleep(0.01)
    assert world.engine.removed == [pusher.ref] and world.engine.workloads == {}
    await world.lifecycle.close()
    assert (await world.pushers.view(CAM)).state == "IDLE"


async def test_a_drain_timer_after_a_viewer_came_back_stops_nothing(world: World) -> None:
    _, rid = await world.running_pusher()
    await release_by_id(world.store, rid)
    await world.store.reserve(CAM, "METRO", "operator-2")  # back inside the grace
    world.later(world.store.policy.drain_grace_ms + 1)
    world.lifecycle.on_drain(CAM, 0.0)
    await asyncio.sleep(0.2)
    await world.lifecycle.close()
    assert world.engine.removed == [] and len(world.engine.workloads) == 1
    assert (await world.pushers.view(CAM)).state == "RUNNING"


async def test_close_forgets_drain_timers(world: World) -> None:
    _, rid = await world.running_pusher()
    await release_by_id(world.store, rid)
    world.later(world.store.policy.drain_grace_ms + 1)
    world.lifecycle.on_drain(CAM, 0.1)
    await world.lifecycle.close()
    await asyncio.sleep(0.3)
    assert world.engine.removed == [], "a timer fired after close"


async def test_stop_never_removes_a_newer_generation(world: World) -> None:
    generation, rid = await world.running_pusher()
    world.engine.workloads.clear()
    newer = world.engine.place(CAM, generation=generation + 1)
    await release_by_id(world.store, rid)
    assert await world.lifecycle.stop_now(CAM)
    assert world.engine.workloads == {newer.name: newer} and world.engine.removed == []
    assert (await world.pushers.view(CAM)).state == "IDLE"


@pytest.mark.parametrize(
    ("place", "removed"),
    [
        (None, True),
        ({"generation": 3}, True),
        ({"generation": None}, True),
        ({"generation": 4}, False),
        ({"managed": False}, False),
        ({"instance": "other", "generation": 1}, False),
        ({"instance": None, "generation": 1}, True),  # made before instances: the default's
    ],
)
async def test_the_fenced_removal(place: dict[str, Any] | None, removed: bool) -> None:
    engine = FakeEngine()
    runtime = FakeRuntime(engine)
    holder = engine.place(CAM, **place) if place is not None else None
    assert await remove_fenced(runtime, CAM, 3) is removed
    assert (engine.workloads == {}) is removed
    assert engine.removed == ([holder.ref] if removed and holder else [])


async def test_an_ingress_error_fails_the_pusher_and_removes_it(world: World) -> None:
    await world.running_pusher()
    view = await world.pushers.view(CAM)
    assert view.running_since_ms is not None
    old_error_at = view.running_since_ms - 1  # an earlier session's: ignored
    await world.lifecycle.ingress_failed(CAM, "earlier", old_error_at)
    assert (await world.pushers.view(CAM)).state == "RUNNING"
    await world.lifecycle.ingress_failed(CAM, "source encoder not ready", view.running_since_ms)
    await world.lifecycle.close()
    failed = await world.pushers.view(CAM)
    assert failed.state == "FAILED" and world.engine.workloads == {}
    assert failed.retry_at_ms is not None and failed.retry_at_ms >= view.running_since_ms + 3_000


# --- death, restart, reconcile, watcher ------------------------------------------------------


async def test_a_dead_pusher_is_restarted_after_its_backoff(world: World) -> None:
    await world.running_pusher()
    dead = world.engine.kill(CAM, exit_code=1)
    watcher = EventWatcher(Reconciler(world.lifecycle))
    assert await watcher.on_event(world.engine.history[-1])
    view = await world.pushers.view(CAM)
    assert view.state == "FAILED" and view.last_error == "container exited with code 1"
    assert await world.lifecycle.tick() == 0  # not due yet: the runtime never restarts either
    assert world.engine.workloads[dead.name] == dead
    world.later(2_000)
    assert await world.lifecycle.tick() == 1
    await world.lifecycle.close()
    view = await world.pushers.view(CAM)
    assert view.state == "RUNNING" and view.generation == 2 and view.container_id != dead.ref
    assert world.engine.removed == [dead.ref]  # the dead one was cleared, then replaced
    assert world.sample("cctv_pusher_restarts_total") == 1


async def test_the_watcher_follows_only_this_deployments_ends(world: World) -> None:
    watcher = EventWatcher(Reconciler(world.lifecycle))
    await world.running_pusher()
    (pusher,) = world.engine.workloads.values()
    theirs = RuntimeEvent(EventKind.ENDED, pusher.ref, pusher.name, CAM, 1, "other", 1)
    started = RuntimeEvent(EventKind.STARTED, pusher.ref, pusher.name, CAM, 1)
    assert not await watcher.on_event(theirs) and not await watcher.on_event(started)
    removed = RuntimeEvent(EventKind.REMOVED, pusher.ref, pusher.name, CAM, 1)
    assert await watcher.on_event(removed)
    assert (await world.pushers.view(CAM)).last_error == "container removed"


async def test_relist_runs_a_reconcile_pass(world: World) -> None:
    orphan = world.engine.place("cam-2", generation=4)
    watcher = EventWatcher(Reconciler(world.lifecycle))
    assert await watcher.on_event(RuntimeEvent(EventKind.RELIST))
    assert world.engine.removed == [orphan.ref] and watcher.relists == 1


async def test_the_watcher_resubscribes_after_a_break_and_relists_after_a_gap(
    world: World,
) -> None:
    await world.running_pusher()
    watcher = EventWatcher(Reconciler(world.lifecycle), max_backoff_seconds=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))

    async def until(check: Callable[[], bool | Awaitable[bool]]) -> None:
        async with asyncio.timeout(5):
            while not await _value(check()):
                await asyncio.sleep(0.01)

    async def failed() -> bool:
        return (await world.pushers.view(CAM)).state == "FAILED"

    try:
        await until(lambda: bool(world.engine._queues))
        # The engine restarts: the stream breaks, and the history the watcher resumes from
        # (noted before its re-list) is gone by the time it subscribes again.
        world.engine.before["list"] = world.engine.forget_history
        world.engine.break_streams()
        await until(lambda: watcher.reconnects == 1 and watcher.relists == 1)
        await until(lambda: bool(world.engine._queues))
        world.engine.kill(CAM)
        await until(failed)
    finally:
        stop.set()
        await task


async def _value(value: bool | Awaitable[bool]) -> bool:
    return value if isinstance(value, bool) else await value


async def test_reconcile_sees_only_this_deployments_pushers(world: World, client: Redis) -> None:
    ours = world.engine.place("cam-2", generation=3)
    world.engine.place("cam-9", instance="other")  # another deployment's: never an orphan
    world.engine.place("cam-8", managed=False)
    reconciler = Reconciler(world.lifecycle)
    assert [(c.kind, c.camera_id) for c in await reconciler.run_once()] == [("orphan", "cam-2")]
    assert world.engine.removed == [ours.ref] and await reconciler.run_once() == []
    assert (await world.pushers.view("cam-2")).generation == 3  # fenced past the orphan
    assert len(world.engine.workloads) == 2


async def test_an_orphan_of_a_camera_in_use_again_is_not_removed(world: World) -> None:
    await world.running_pusher()
    (pusher,) = world.engine.workloads.values()
    assert await world.lifecycle.remove_orphan(CAM, 1) is False
    assert world.engine.workloads == {pusher.name: pusher}


async def test_reconcile_marks_dead_and_missing_pushers_and_starts_lost_ones(
    world: World, client: Redis
) -> None:
    reconciler = Reconciler(world.lifecycle)
    await world.running_pusher()
    world.engine.kill(CAM, phase=Phase.LOST, exit_code=None)
    assert [c.kind for c in await reconciler.run_once()] == ["dead"]
    await world.running_pusher("cam-2")
    world.engine.workloads.clear()
    assert await reconciler.run_once() == []  # one empty listing is not trusted
    assert [c.kind for c in await reconciler.run_once()] == ["missing"]
    await client.delete(keys.metadata("cam-2"))  # the state is lost; the viewer is not
    assert [c.kind for c in await reconciler.run_once()] == ["start"]
    await world.lifecycle.close()
    assert (await world.pushers.view("cam-2")).state == "RUNNING"
    world.engine.fail("list", RuntimeUnavailable("down", runtime="fake"))
    with pytest.raises(RuntimeUnavailable):
        await reconciler.run_once()


@pytest.mark.parametrize("listing", ["taken before the start", "taken after the start"])
async def test_a_start_completing_during_a_pass_is_neither_missing_nor_removed(
    world: World, listing: str
) -> None:
    """A start on another replica completes while a pass reads its two sources. The pass never
    marks that pusher failed (restarting it under a new generation) and never removes it."""
    await world.running_pusher("cam-2")  # the listing is not empty: an absence would count
    reconciler = Reconciler(world.lifecycle)
    list_managed = world.runtime.list_managed

    async def start_meanwhile() -> list[Workload]:
        before = await list_managed()
        await world.running_pusher()
        return before if listing == "taken before the start" else await list_managed()

    world.runtime.list_managed = start_meanwhile  # type: ignore[method-assign]
    assert await reconciler.run_once() == []
    world.runtime.list_managed = list_managed  # type: ignore[method-assign]
    view = await world.pushers.view(CAM)
    assert (view.state, view.generation) == ("RUNNING", 1)
    assert len(world.engine.workloads) == 2 and world.engine.removed == []
