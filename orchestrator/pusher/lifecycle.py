"""Starting and stopping one camera's pusher, single-flight per camera (docs/architecture.md,
flows 1 and 2).

Who acts is decided in Valkey, never here: a start runs only with a generation the claim
script handed out, a stop only with one the stop script handed out. In this process one
operation per camera runs at a time (later ones queue behind it), so a claim arriving while
the same camera is still being torn down waits for the teardown instead of racing it.

- **start**: read the camera and its WHIP target (the camera's LiveKit ingress), create
  ``whip-pusher-<id>`` with the claim's generation, then mark it RUNNING (fenced by
  generation). A name conflict adopts a running container and clears only a stopped
  container of an older generation. Failures are recorded with a
  restart time (``pusher_failed``); a claim that went stale leaves the container to its owner
  or, when the camera stopped meanwhile, removes what this start created.
- **stop**: remove the container unless a newer generation holds the name, then report it
  (``pusher_stopped``), which claims the next start at once if viewers came back.
- **tick**: every few hundred ms, move due cameras on: drain grace over → stop; restart time
  reached, claim abandoned → claim and start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from orchestrator.domain.containers import ContainerConflict, ContainerInfo, PusherSpec
from orchestrator.domain.models import Admission
from orchestrator.domain.pusher import PusherState, due_for_start, due_for_stop
from orchestrator.errors import (
    CameraDisabled,
    CameraNotFound,
    OrchestratorError,
    RuntimeRejected,
    RuntimeUnavailable,
    StoreUnavailable,
)
from orchestrator.metrics import ServiceMetrics
from orchestrator.pusher.spec_factory import SpecFactory, TargetSource
from orchestrator.runtime import DockerRuntime
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.pushers import PusherStore

log = logging.getLogger(__name__)

ENGINE_RETRIES = 3


def describe(exc: BaseException) -> str:
    """A short, secret-free reason for stats (the runtime already redacted its messages)."""
    return f"{type(exc).__name__}: {exc}"[:300]


def _retrying() -> AsyncRetrying:
    """Short in-operation retries for an engine blip; the restart backoff handles the rest."""
    return AsyncRetrying(
        stop=stop_after_attempt(ENGINE_RETRIES),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
        retry=retry_if_exception_type(RuntimeUnavailable),
        reraise=True,
    )


class Lifecycle:
    def __init__(
        self,
        pushers: PusherStore,
        runtime: DockerRuntime,
        registry: CameraRegistry,
        specs: SpecFactory,
        targets: TargetSource,
        metrics: ServiceMetrics | None = None,
        on_running: Callable[[str, int, str], None] | None = None,
    ) -> None:
        """``on_running(camera_id, generation, container_id)``: told of each pusher marked
        RUNNING by this process (the codec probe)."""
        self.on_running = on_running
        self.pushers = pushers
        self.runtime = runtime
        self.registry = registry
        self.specs = specs
        self.targets = targets
        self.metrics = metrics if metrics is not None else ServiceMetrics(None)
        self._ops: dict[str, asyncio.Task[None]] = {}

    # --- scheduling -------------------------------------------------------------------

    def busy(self, camera_id: str) -> bool:
        return camera_id in self._ops

    def spawn(self, camera_id: str, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after any operation already running for this camera here."""
        previous = self._ops.get(camera_id)

        async def chained() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the tick and reconcile retry
                self.metrics.dependency_error(exc)
                log.warning(
                    "pusher operation failed",
                    extra={"camera_id": camera_id, "error": describe(exc)},
                )

        task = asyncio.create_task(chained(), name=f"pusher:{camera_id}")
        self._ops[camera_id] = task
        task.add_done_callback(lambda done: self._forget(camera_id, done))

    def _forget(self, camera_id: str, task: asyncio.Task[None]) -> None:
        if self._ops.get(camera_id) is task:
            del self._ops[camera_id]

    def on_claim(self, admission: Admission) -> None:
        """The reserve script claimed the start: run it behind the response, never awaited."""
        started = time.perf_counter()
        self.spawn(
            admission.camera_id, self.start(admission.camera_id, admission.generation, started)
        )

    async def close(self, timeout_seconds: float = 15.0) -> None:
        """Let running operations finish (bounded), then cancel what is left."""
        tasks = list(self._ops.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # --- operations -------------------------------------------------------------------

    async def start(self, camera_id: str, generation: int, started: float | None = None) -> None:
        started = time.perf_counter() if started is None else started
        fields = {"camera_id": camera_id, "generation": generation}
        try:
            spec = await self._spec(camera_id, generation)
            info = await self._create(spec)
        except StoreUnavailable:
            raise  # cannot record anything: the claim expires and is taken over
        except OrchestratorError as exc:
            self.metrics.pusher_start("failed")
            self.metrics.dependency_error(exc)
            retry_at = await self.pushers.mark_failed(camera_id, generation, describe(exc))
            log.warning(
                "pusher start failed",
                extra={**fields, "error": describe(exc), "retry_at_ms": retry_at},
            )
            return
        if await self.pushers.mark_running(camera_id, generation, info.id):
            self.metrics.pusher_start("running", time.perf_counter() - started)
            log.info("pusher running", extra={**fields, "container_id": info.id})
            if self.on_running is not None:
                self.on_running(camera_id, generation, info.id)
            return
        self.metrics.pusher_start("stale")
        view = await self.pushers.view(camera_id)
        log.info(
            "pusher claim went stale",
            extra={**fields, "state": view.state, "current_generation": view.generation},
        )
        if view.generation == generation and view.state in (PusherState.STOPPING, PusherState.IDLE):
            await self.runtime.remove(camera_id, max_generation=generation)

    async def _spec(self, camera_id: str, generation: int) -> PusherSpec:
        camera = await self.registry.get(camera_id)
        if camera is None:
            raise CameraNotFound(f"camera {camera_id} is not in the registry")
        if not camera.enabled:
            raise CameraDisabled(f"camera {camera_id} is disabled")
        target = await self.targets.whip_target(camera_id)
        return self.specs.build(camera, generation, target)

    async def _create(self, spec: PusherSpec) -> ContainerInfo:
        async for attempt in _retrying():
            with attempt:
                return await self._create_once(spec)
        raise RuntimeUnavailable("unreachable")  # pragma: no cover - reraise=True

    async def _create_once(self, spec: PusherSpec) -> ContainerInfo:
        for _ in range(2):
            try:
                return await self.runtime.create_and_start(spec)
            except ContainerConflict as conflict:
                existing = conflict.existing
                if existing is None:
                    continue  # the holder vanished between the 409 and the read: create again
                if not existing.managed:
                    raise RuntimeRejected(
                        f"{spec.name} is held by a container we do not manage"
                    ) from conflict
                if existing.running:
                    log.info(
                        "adopting the running pusher",
                        extra={
                            "camera_id": spec.camera_id,
                            "container_id": existing.id,
                            "generation": spec.generation,
                        },
                    )
                    return existing
                if (existing.generation or 0) > spec.generation:
                    raise RuntimeRejected(
                        f"{spec.name} belongs to a newer generation"
                    ) from conflict
                # A stopped container of this or an older generation holds the name: clear it
                # (fenced by generation) and create ours.
                await self.runtime.remove(spec.camera_id, max_generation=spec.generation)
        raise RuntimeUnavailable(f"{spec.name} stayed taken")

    async def stop(self, camera_id: str, generation: int) -> None:
        async for attempt in _retrying():
            with attempt:
                removed = await self.runtime.remove(camera_id, max_generation=generation)
        if not removed:
            log.warning(
                "pusher name held by a newer or foreign container; not removed",
                extra={"camera_id": camera_id, "generation": generation},
            )
        next_generation = await self.pushers.stopped(camera_id, generation)
        log.info("pusher stopped", extra={"camera_id": camera_id, "generation": generation})
        if next_generation is not None:
            await self.start(camera_id, next_generation)

    async def ingress_failed(self, camera_id: str, error: str, at_ms: int) -> None:
        """LiveKit ended the camera's ingress in ERROR at ``at_ms``: the running pusher's WHIP
        session is over, so it is marked failed (the restart backoff applies, with the error
        as ``last_error``) and its container removed. An error older than the running pusher
        belongs to an earlier session and is ignored."""
        view = await self.pushers.view(camera_id)
        if view.phase != PusherState.RUNNING or view.container_id is None:
            return
        if view.running_since_ms is None or view.running_since_ms > at_ms:
            return
        retry_at = await self.pushers.mark_failed(
            camera_id,
            view.generation,
            f"ingress error: {error}",
            container_id=view.container_id,
            # the restart must not find this container still stopping (it would adopt it)
            min_delay_ms=(self.runtime.stop_timeout_seconds + 2) * 1000,
        )
        if retry_at is None:
            return
        log.warning(
            "ingress failed; pusher restart scheduled",
            extra={"camera_id": camera_id, "error": error[:300], "retry_at_ms": retry_at},
        )
        self.spawn(camera_id, self._remove_failed(camera_id, view.generation))

    async def _remove_failed(self, camera_id: str, generation: int) -> None:
        async for attempt in _retrying():
            with attempt:
                await self.runtime.remove(camera_id, max_generation=generation)

    async def stop_now(self, camera_id: str) -> bool:
        """Skip the drain grace of a camera nobody watches any more (a deleted camera, the
        on-call reset): stop its pusher now, fenced like any stop. False when this process may
        stop nothing (the camera is in use again, or another process owns the stop)."""
        generation = await self.pushers.begin_stop(camera_id, force=True)
        if generation is None:
            return False
        await self.stop(camera_id, generation)
        return True

    async def remove_orphan(self, camera_id: str, label_generation: int) -> bool:
        """Remove the container of a camera nobody watches (IDLE). The fence script first lifts
        the camera's generation to the container's label, so a start claimed meanwhile is never
        touched. False when the camera is in use again or nothing was removed."""
        fence = await self.pushers.fence(camera_id, label_generation)
        if fence is None:
            return False
        return await self.runtime.remove(camera_id, max_generation=fence)

    async def claim_and_start(self, camera_id: str, *, restart: bool = False) -> None:
        """``restart``: the camera's pusher had failed (counted once, by the claimant)."""
        generation = await self.pushers.claim(camera_id)
        if generation is not None:
            if restart:
                self.metrics.pusher_restarts.inc()
            await self.start(camera_id, generation)

    async def stop_if_due(self, camera_id: str) -> None:
        generation = await self.pushers.begin_stop(camera_id)
        if generation is not None:
            await self.stop(camera_id, generation)

    # --- the periodic pass ------------------------------------------------------------

    async def tick(self) -> int:
        """Hand due cameras to an operation; the scripts re-check every condition."""
        snapshot = await self.pushers.snapshot()
        scheduled = 0
        for camera_id, view in snapshot.views.items():
            if self.busy(camera_id):
                continue
            live = snapshot.watched.get(camera_id, 0)
            if due_for_stop(view, live, snapshot.now_ms):
                self.spawn(camera_id, self.stop_if_due(camera_id))
                scheduled += 1
            elif due_for_start(view, live, snapshot.now_ms):
                restart = view.state == PusherState.FAILED
                self.spawn(camera_id, self.claim_and_start(camera_id, restart=restart))
                scheduled += 1
        return scheduled
