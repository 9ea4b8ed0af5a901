"""Starting and stopping one camera's pusher, single-flight per camera (docs/architecture.md,
flows 1 and 2). The pushers run on whatever runtime the port gives (``domain/runtime.py``).

Who acts is decided in Valkey, never here: a start runs only with a generation the claim
script handed out, a stop only with one the stop script handed out. In this process one
operation per camera runs at a time (``single_flight.py``).

- **start**: read the camera and its WHIP target (the camera's LiveKit ingress), create
  ``whip-pusher-<id>`` with the claim's generation, then mark it RUNNING (fenced by
  generation). What a name conflict does (adopt, clear, refuse) is decided in
  ``placement.py``. Failures are recorded with a restart time (``pusher_failed``); a claim
  that went stale leaves the pusher to its owner or, when the camera stopped meanwhile,
  removes what this start created (fenced by generation).
- **stop**: remove the pusher unless a newer generation or another owner holds the name
  (``placement.remove_fenced``), then report it (``pusher_stopped``), which claims the next
  start at once if viewers came back.
- **drain**: a release that took a camera's last lease stops its pusher when the grace ends
  (a timer per camera, so a burst of releases tears down concurrently).
- **tick**: every few hundred ms, move due cameras on: drain grace over → stop (leases that
  expired, timers lost to a restart); restart time reached, claim abandoned → claim and start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from orchestrator.domain.containers import PusherSpec, Workload
from orchestrator.domain.models import Admission
from orchestrator.domain.pusher import PusherState, due_for_start, due_for_stop
from orchestrator.domain.runtime import PusherRuntime
from orchestrator.errors import (
    CameraDisabled,
    CameraNotFound,
    OrchestratorError,
    RuntimeUnavailable,
    StoreUnavailable,
)
from orchestrator.metrics import ServiceMetrics
from orchestrator.pusher.placement import create_or_adopt, remove_fenced
from orchestrator.pusher.single_flight import PerCamera, describe
from orchestrator.pusher.spec_factory import SpecFactory, TargetSource
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.pushers import PusherStore

log = logging.getLogger(__name__)

ENGINE_RETRIES = 3
DRAIN_MARGIN_S = 0.02  # after the grace: Valkey's clock decides, and it is the one that counts


def _retrying() -> AsyncRetrying:
    """Short in-operation retries for an engine blip; the restart backoff handles the rest."""
    return AsyncRetrying(
        stop=stop_after_attempt(ENGINE_RETRIES),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
        retry=retry_if_exception_type(RuntimeUnavailable),
        reraise=True,
    )


class Lifecycle(PerCamera):
    def __init__(
        self,
        pushers: PusherStore,
        runtime: PusherRuntime,
        registry: CameraRegistry,
        specs: SpecFactory,
        targets: TargetSource,
        metrics: ServiceMetrics | None = None,
        on_running: Callable[[str, int, str], None] | None = None,
    ) -> None:
        """``on_running(camera_id, generation, ref)``: told of each pusher marked RUNNING by
        this process (the codec probe)."""
        super().__init__(metrics)
        self.on_running = on_running
        self.pushers = pushers
        self.runtime = runtime
        self.registry = registry
        self.specs = specs
        self.targets = targets

    def on_claim(self, admission: Admission) -> None:
        """The reserve script claimed the start: run it behind the response, never awaited."""
        started = time.perf_counter()
        self.spawn(
            admission.camera_id, self.start(admission.camera_id, admission.generation, started)
        )

    def on_drain(self, camera_id: str, grace_s: float) -> None:
        """The camera's last lease went (a release): stop its pusher once the drain grace is
        over, not at the next tick, so a burst of releases stops its cameras together. The
        stop script decides: a reserve inside the grace makes this a no-op, and a timer that
        fires a little early leaves the stop to the tick."""
        self.spawn_later(grace_s + DRAIN_MARGIN_S, camera_id, lambda: self.stop_if_due(camera_id))

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
        if await self.pushers.mark_running(camera_id, generation, info.ref):
            self.metrics.pusher_start("running", time.perf_counter() - started)
            log.info("pusher running", extra={**fields, "container_id": info.ref})
            if self.on_running is not None:
                self.on_running(camera_id, generation, info.ref)
            return
        self.metrics.pusher_start("stale")
        view = await self.pushers.view(camera_id)
        log.info(
            "pusher claim went stale",
            extra={**fields, "state": view.state, "current_generation": view.generation},
        )
        if view.generation == generation and view.state in (PusherState.STOPPING, PusherState.IDLE):
            await self.remove_fenced(camera_id, generation)  # else: the new owner adopts it

    async def _spec(self, camera_id: str, generation: int) -> PusherSpec:
        camera = await self.registry.get(camera_id)
        if camera is None:
            raise CameraNotFound(f"camera {camera_id} is not in the registry")
        if not camera.enabled:
            raise CameraDisabled(f"camera {camera_id} is disabled")
        target = await self.targets.whip_target(camera_id)
        return self.specs.build(camera, generation, target)

    async def _create(self, spec: PusherSpec) -> Workload:
        async for attempt in _retrying():
            with attempt:
                return await create_or_adopt(self.runtime, spec)
        raise RuntimeUnavailable("unreachable")  # pragma: no cover - reraise=True

    async def remove_fenced(self, camera_id: str, max_generation: int) -> bool:
        """The camera's pusher removed unless a newer generation or another owner holds the
        name (``placement.remove_fenced``)."""
        return await remove_fenced(self.runtime, camera_id, max_generation)

    async def _remove_retried(self, camera_id: str, max_generation: int) -> bool:
        """:meth:`remove_fenced` with the short retries of an engine blip."""
        async for attempt in _retrying():
            with attempt:
                return await self.remove_fenced(camera_id, max_generation)
        raise RuntimeUnavailable("unreachable")  # pragma: no cover - reraise=True

    async def stop(self, camera_id: str, generation: int) -> None:
        removed = await self._remove_retried(camera_id, generation)
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
            min_delay_ms=(self.runtime.stop_grace_seconds + 2) * 1000,
        )
        if retry_at is None:
            return
        log.warning(
            "ingress failed; pusher restart scheduled",
            extra={"camera_id": camera_id, "error": error[:300], "retry_at_ms": retry_at},
        )
        self.spawn(camera_id, self._remove_failed(camera_id, view.generation))

    async def _remove_failed(self, camera_id: str, generation: int) -> None:
        await self._remove_retried(camera_id, generation)

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
        return await self.remove_fenced(camera_id, fence)

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
