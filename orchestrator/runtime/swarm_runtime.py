"""The Swarm adapter of the runtime port (``domain/runtime.py``): pushers as services of a
Docker Swarm, through a manager's API (``CCTV_RUNTIME=swarm``, ``DOCKER_HOST`` = a manager).

What is Swarm's here (``swarm_engine.py`` builds the service, ``swarm_model.py`` reads it):

- a camera's pusher is the service ``whip-pusher-<camera_id>`` (a hashed name for ids that
  are not valid service names), 1 replica, restart condition ``none``: Swarm never restarts
  a pusher, the lifecycle does, with its backoff;
- a duplicate name answers 409: ``ContainerConflict`` carrying the holder, left untouched;
- a workload's ref is the service id, its phase that of the service's task;
- the manager emits no task events, so ``events`` polls the manager every
  ``poll_seconds`` (at most 1 s) and reports the differences; a task on a node that is not
  ready is LOST (a dead node's task keeps reporting ``running``). A poll cannot replay the
  past, so a watch resumed with ``since`` starts with RELIST;
- ``remove`` removes the service, then waits (bounded by the stop grace plus a margin)
  until its task no longer runs on a live node, so a camera's next pusher never overlaps
  its last.

Listings and events keep only this deployment's instance; ``get`` reports whoever holds the
name. Errors become ``RuntimeUnavailable`` (dependency ``swarm``) or ``RuntimeRejected``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator

from orchestrator.domain.containers import (
    DEFAULT_INSTANCE,
    EventKind,
    PusherSpec,
    RuntimeEvent,
    Workload,
    validate_instance,
)
from orchestrator.errors import RuntimeRejected, RuntimeUnavailable
from orchestrator.runtime.name_conflict import create_unique
from orchestrator.runtime.offload import Offload
from orchestrator.runtime.swarm_engine import SwarmEngine, SwarmOptions
from orchestrator.runtime.swarm_model import service_name

log = logging.getLogger(__name__)

REMOVE_MARGIN_SECONDS = 5.0  # beyond the stop grace: the worker's report reaching the manager
SECRET_SWEEP_SECONDS = 60.0


def changes(before: dict[str, Workload], after: dict[str, Workload]) -> list[RuntimeEvent]:
    """What happened between two polls: started, ended (exited or lost), removed."""
    found: list[RuntimeEvent] = []
    now = time.time()
    for ref, w in after.items():
        was = before.get(ref)
        if w.running and (was is None or not was.running):
            found.append(_event(EventKind.STARTED, w, now))
        elif w.stopped and (was is None or not was.stopped):
            found.append(_event(EventKind.ENDED, w, now))
    found += [_event(EventKind.REMOVED, w, now) for ref, w in before.items() if ref not in after]
    return found


def _event(kind: EventKind, w: Workload, now: float) -> RuntimeEvent:
    return RuntimeEvent(
        kind=kind,
        ref=w.ref,
        name=w.name,
        camera_id=w.camera_id,
        generation=w.generation,
        instance=w.instance,
        exit_code=w.exit_code if kind is EventKind.ENDED else None,
        time=now,
        displaced=w.displaced and kind is EventKind.ENDED,
    )


class SwarmRuntime:
    """The pusher services of one deployment instance on one Swarm.

    ``base_url`` is a manager's API (None: ``DOCKER_HOST`` and the TLS variables, like the
    docker CLI); ``timeout_seconds`` bounds every request.
    """

    kind = "swarm"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout_seconds: float = 10.0,
        stop_timeout_seconds: int = 10,
        workers: int = 32,
        instance: str = DEFAULT_INSTANCE,
        poll_seconds: float = 0.5,
        options: SwarmOptions | None = None,
    ) -> None:
        if not 0 < poll_seconds <= 1.0:
            raise ValueError("poll_seconds must be in (0, 1]")
        self.instance = validate_instance(instance)
        self.stop_timeout_seconds = stop_timeout_seconds
        self.poll_seconds = poll_seconds
        self._engine = SwarmEngine(
            base_url,
            timeout_seconds=timeout_seconds,
            options=options or SwarmOptions(),
            pool_size=workers,
        )
        self._run = Offload(workers, self.kind)
        self._swept_at = time.monotonic()  # the first sweep a minute after start

    @property
    def stop_grace_seconds(self) -> int:
        return self.stop_timeout_seconds

    async def create_and_start(self, spec: PusherSpec) -> Workload:
        """Create the camera's service: PENDING until its task runs (the poll reports it).

        Raises ``ContainerConflict`` (with ``existing``) when a service holds the name."""
        name = service_name(spec.camera_id)
        fields = {"camera_id": spec.camera_id, "generation": spec.generation, "image": spec.image}
        secrets = tuple(spec.env.values())
        made = await create_unique(
            spec,
            name,
            lambda: self._run("create", lambda: self._engine.create(spec, name), secrets),
            self.get,
        )
        log.info("pusher service created", extra={**fields, "service_id": made.ref})
        return made

    async def get(self, camera_id: str) -> Workload | None:
        name = service_name(camera_id)
        return await self._run("inspect", lambda: self._engine.inspect(name))

    async def list_managed(self) -> list[Workload]:
        snapshot = await self._run("list", self._engine.snapshot)
        return [w for w in snapshot if w.owned_by(self.instance)]

    async def remove(self, ref: str, *, wait: bool = True) -> None:
        """Remove service ``ref`` and (``wait``) wait until its task stops; gone already is
        fine. Without ``wait`` the node stops the task on its own."""
        bound = self.stop_timeout_seconds + REMOVE_MARGIN_SECONDS if wait else 0.0
        if not await self._run("remove", lambda: self._engine.remove(ref, bound)) and wait:
            log.warning(
                "pusher service removed; its task still reports running",
                extra={"service_id": ref, "waited_seconds": bound},
            )
        log.debug("pusher service removed", extra={"service_id": ref})

    async def logs(self, ref: str, tail: int = 200) -> str:
        return await self._run("logs", lambda: self._engine.logs(ref, tail))

    async def ping(self) -> bool:
        try:
            return await self._run("ping", self._engine.ping)
        except (RuntimeUnavailable, RuntimeRejected):
            return False

    async def _mine(self) -> dict[str, Workload]:
        snapshot = await self._run("poll", self._engine.snapshot)
        return {w.ref: w for w in snapshot if w.owned_by(self.instance)}

    async def events(
        self, stop: asyncio.Event, *, since: float | None = None
    ) -> AsyncGenerator[RuntimeEvent, None]:
        """Poll the manager every ``poll_seconds`` and yield what changed, until ``stop``.

        The first poll is the baseline. With ``since`` (a resumed watch) RELIST comes first:
        what happened in the gap is not replayed. A failed poll raises
        ``RuntimeUnavailable``: the caller re-lists and subscribes again.
        """
        before = await self._mine()
        if since is not None:
            yield RuntimeEvent(EventKind.RELIST, time=time.time())
        while not stop.is_set():
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            after = await self._mine()
            for event in changes(before, after):
                yield event
            before = after
            await self._collect_secrets()

    async def _collect_secrets(self) -> None:
        """Now and then, remove this instance's env secrets no service uses (left by a crash
        mid-create or mid-remove). Only the service's watch does this: a listing (an on-call
        ``status``, a dry run) never deletes anything."""
        if time.monotonic() - self._swept_at < SECRET_SWEEP_SECONDS:
            return
        self._swept_at = time.monotonic()
        try:
            removed = await self._run("sweep", lambda: self._engine.collect_secrets(self.instance))
        except (RuntimeUnavailable, RuntimeRejected) as exc:  # best effort: the watch goes on
            log.warning("pusher secret sweep failed", extra={"error": str(exc)})
            return
        if removed:
            log.info("unused pusher secrets removed", extra={"count": removed})

    async def close(self) -> None:
        await asyncio.to_thread(self._engine.close)
        self._run.shutdown()
