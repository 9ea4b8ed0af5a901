"""An in-memory pusher runtime (the port of ``orchestrator/domain/runtime.py``) for fast tests
of the lifecycle, the reconcile pass and the watcher.

It keeps the port's rules as the real adapters do: a camera's pusher is named
``whip-pusher-<camera_id>``; a taken name raises ``ContainerConflict`` with the holder, left as
it was; listings and events are this instance's; nothing restarts on its own; events resume
from ``since``, and a subscription from before the kept history starts with RELIST.

Several :class:`FakeRuntime` of different instances share one :class:`FakeEngine`, like
deployments on one engine. Tests drive the engine: ``place`` a holder, ``kill`` a pusher
(EXITED, or LOST), ``fail`` the next calls of an operation, run something ``before`` one,
hook ``on_create``, ``forget_history`` (an engine restart), ``break_streams``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace

from orchestrator.domain.containers import (
    DEFAULT_INSTANCE,
    ContainerConflict,
    EventKind,
    Phase,
    PusherSpec,
    RuntimeEvent,
    Workload,
)
from orchestrator.domain.ids import container_name
from orchestrator.errors import RuntimeUnavailable


class FakeEngine:
    def __init__(self) -> None:
        self.workloads: dict[str, Workload] = {}  # by name
        self.specs: dict[str, PusherSpec] = {}  # by ref: what each pusher was created from
        self.removed: list[str] = []  # refs, in order
        self.history: list[RuntimeEvent] = []
        self.forgotten_before = 0.0  # a watch resumed from earlier gets RELIST first
        self.faults: dict[str, list[BaseException]] = {}
        self.on_create: Callable[[PusherSpec], Awaitable[None]] | None = None
        self.vanish_on_conflict = False  # once: the holder goes between the conflict and get
        self.calls: list[str] = []
        self.before: dict[str, Callable[[], object]] = {}  # once, before the op's next call
        self.up = True  # ping's answer
        self._queues: set[asyncio.Queue[RuntimeEvent | None]] = set()
        self._refs = itertools.count(1)

    def fail(self, op: str, error: BaseException, times: int = 1) -> None:
        """The next ``times`` calls of ``op`` (create, get, list, remove, events) raise."""
        self.faults.setdefault(op, []).extend([error] * times)

    def check(self, op: str) -> None:
        self.calls.append(op)
        if op in self.before:
            self.before.pop(op)()
        if self.faults.get(op):
            raise self.faults[op].pop(0)

    def emit(self, kind: EventKind, w: Workload) -> None:
        event = RuntimeEvent(
            kind, w.ref, w.name, w.camera_id, w.generation, w.instance, w.exit_code, time.time()
        )
        self.history.append(event)
        for queue in self._queues:
            queue.put_nowait(event)

    def place(
        self,
        camera_id: str,
        *,
        generation: int | None = 1,
        phase: Phase = Phase.RUNNING,
        managed: bool = True,
        instance: str | None = DEFAULT_INSTANCE,
        exit_code: int | None = None,
        displaced: bool = False,
    ) -> Workload:
        """Put something under the camera's name directly (a holder the test controls)."""
        w = Workload(
            f"fake-{next(self._refs)}",
            container_name(camera_id),
            camera_id if managed else None,
            generation if managed else None,
            phase,
            managed,
            instance if managed else None,
            exit_code,
            displaced=displaced,
        )
        self.workloads[w.name] = w
        return w

    def kill(
        self, camera_id: str, exit_code: int | None = 137, phase: Phase = Phase.EXITED
    ) -> Workload:
        """The pusher dies on its own (``phase`` LOST: its node went away); never restarted."""
        name = container_name(camera_id)
        dead = self.workloads[name] = replace(
            self.workloads[name], phase=phase, exit_code=exit_code
        )
        self.emit(EventKind.ENDED, dead)
        return dead

    def forget_history(self) -> None:
        self.history.clear()
        self.forgotten_before = time.time()

    def break_streams(self) -> None:
        for queue in self._queues:
            queue.put_nowait(None)

    def subscribe(self, since: float | None) -> asyncio.Queue[RuntimeEvent | None]:
        """A queue holding the replay from ``since``, then every new event (one step: no event
        is lost or doubled)."""
        queue: asyncio.Queue[RuntimeEvent | None] = asyncio.Queue()
        if since is not None and since < self.forgotten_before:
            queue.put_nowait(RuntimeEvent(EventKind.RELIST, time=time.time()))
        if since is not None:
            for event in (e for e in self.history if e.time >= since):
                queue.put_nowait(event)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[RuntimeEvent | None]) -> None:
        self._queues.discard(queue)


class FakeRuntime:
    kind = "fake"

    def __init__(self, engine: FakeEngine, instance: str = DEFAULT_INSTANCE) -> None:
        self.engine = engine
        self.instance = instance
        self.stop_grace_seconds = 1

    async def create_and_start(self, spec: PusherSpec) -> Workload:
        self.engine.check("create")
        name = container_name(spec.camera_id)
        holder = self.engine.workloads.get(name)
        if holder is not None:
            if self.engine.vanish_on_conflict:
                self.engine.vanish_on_conflict = False
                del self.engine.workloads[name]
                holder = None
            raise ContainerConflict(f"{name} already exists", existing=holder)
        w = self.engine.place(spec.camera_id, generation=spec.generation, instance=spec.instance)
        self.engine.specs[w.ref] = spec
        self.engine.emit(EventKind.STARTED, w)
        if self.engine.on_create is not None:
            await self.engine.on_create(spec)
        return w

    async def get(self, camera_id: str) -> Workload | None:
        self.engine.check("get")
        return self.engine.workloads.get(container_name(camera_id))

    async def list_managed(self) -> list[Workload]:
        self.engine.check("list")
        return [w for w in self.engine.workloads.values() if w.owned_by(self.instance)]

    async def remove(self, ref: str, *, wait: bool = True) -> None:
        self.engine.check("remove")
        if not wait:
            self.engine.calls.append("remove without waiting")
        for name, w in list(self.engine.workloads.items()):
            if w.ref == ref:
                del self.engine.workloads[name]
                self.engine.removed.append(ref)
                if w.running:
                    self.engine.emit(EventKind.ENDED, replace(w, phase=Phase.EXITED, exit_code=0))
                self.engine.emit(EventKind.REMOVED, w)

    async def logs(self, ref: str, tail: int = 200) -> str:
        return ""

    async def ping(self) -> bool:
        return self.engine.up

    async def events(
        self, stop: asyncio.Event, *, since: float | None = None
    ) -> AsyncGenerator[RuntimeEvent, None]:
        self.engine.check("events")
        queue = self.engine.subscribe(since)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                item = asyncio.ensure_future(queue.get())
                await asyncio.wait([item, stopped], return_when=asyncio.FIRST_COMPLETED)
                if not item.done():
                    item.cancel()
                    return
                event = item.result()
                if event is None:
                    raise RuntimeUnavailable("fake event stream broke", runtime=self.kind)
                if event.kind is EventKind.RELIST or event.owned_by(self.instance):
                    yield event
        finally:
            stopped.cancel()
            self.engine.unsubscribe(queue)

    async def close(self) -> None:
        return None
