"""The Docker adapter of the runtime port (``domain/runtime.py``) over the synchronous docker
SDK (docker 7.x).

Every SDK call runs in a worker thread of the runtime's own pool (``offload.Offload``)
through :class:`~orchestrator.runtime.sync_engine.SyncEngine`; every docker or requests
error is translated with ``raise ... from exc`` into ``RuntimeUnavailable`` (temporary),
``RuntimeRejected`` (permanent) or ``ContainerConflict``, and never leaks.

What is Docker's here: a camera's pusher is the container ``whip-pusher-<camera_id>``; its
phase comes from the container state (``parsing.py``); the engine never restarts it (restart
policy ``no``); the event watch resumes with the engine's own replay (``since``). Listings
and events keep only this deployment's instance (a container without an instance label is
the default instance's); ``get`` reports whoever holds the name.

No decision is taken here: ``create_and_start`` never replaces a container (a taken name
raises ``ContainerConflict`` carrying the holder), and ``remove`` deletes exactly the
container it is given. The lifecycle decides what to adopt, clear, refuse and fence
(``pusher/placement.py``).

A call that is cancelled while its thread runs still completes in the engine (a create may
leave a started container behind); the reconciler's ``list_managed`` finds it.

Nothing secret is logged: env values never reach a log call, only ``extra`` ids and numbers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator

from orchestrator.domain.containers import (
    DEFAULT_INSTANCE,
    PusherSpec,
    RuntimeEvent,
    Workload,
    validate_instance,
)
from orchestrator.domain.ids import container_name, validate_camera_id
from orchestrator.errors import RuntimeRejected, RuntimeUnavailable
from orchestrator.runtime.name_conflict import create_unique
from orchestrator.runtime.offload import Offload
from orchestrator.runtime.parsing import event_from_raw
from orchestrator.runtime.sync_engine import EventStream, SyncEngine, translate

log = logging.getLogger(__name__)

_END = object()  # the event stream closed
_STOP = object()  # the caller's stop event was set


class DockerRuntime:
    """The pusher containers of one deployment instance on one Docker engine.

    ``base_url`` None reads ``DOCKER_HOST`` (and the TLS variables) like the docker CLI. The
    client connects lazily, so constructing this never blocks; ``timeout_seconds`` bounds every
    request (a stop waits ``stop_timeout_seconds`` on top, then the engine kills).
    """

    kind = "docker"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout_seconds: float = 10.0,
        stop_timeout_seconds: int = 10,
        workers: int = 32,
        instance: str = DEFAULT_INSTANCE,
        log_max_size: str = "10m",
        log_max_file: int = 3,
    ) -> None:
        self._timeout = timeout_seconds
        self.stop_timeout_seconds = stop_timeout_seconds
        self.instance = validate_instance(instance)
        self._engine = SyncEngine(
            base_url,
            timeout_seconds=timeout_seconds,
            stop_timeout=stop_timeout_seconds,
            pool_size=workers,
            log_max_size=log_max_size,
            log_max_file=log_max_file,
        )
        self._run = Offload(workers, self.kind)

    @property
    def stop_grace_seconds(self) -> int:
        return self.stop_timeout_seconds

    async def create_and_start(self, spec: PusherSpec) -> Workload:
        """Create and start ``whip-pusher-<camera_id>``.

        Raises ``ContainerConflict`` (with ``existing``, None when the holder vanished before
        it could be read) when a container already holds the name; that container is left
        exactly as it was. No retry here: the lifecycle owns the one retry layer.
        """
        name = container_name(spec.camera_id)
        fields = {"camera_id": spec.camera_id, "generation": spec.generation, "image": spec.image}
        secrets = tuple(spec.env.values())
        info = await create_unique(
            spec,
            name,
            lambda: self._run("create", lambda: self._engine.create_and_start(spec, name), secrets),
            self.get,
        )
        log.info("pusher container started", extra={**fields, "container_id": info.ref})
        return info

    async def get(self, camera_id: str) -> Workload | None:
        """The container named ``whip-pusher-<camera_id>`` (whoever owns it), or None."""
        name = container_name(validate_camera_id(camera_id))
        return await self._run("inspect", lambda: self._engine.inspect(name))

    async def list_managed(self) -> list[Workload]:
        """Every container of this deployment instance with our labels, in any state."""
        listing = await self._run("list", self._engine.list_managed)
        return [info for info in listing if info.owned_by(self.instance)]

    async def remove(self, ref: str, *, wait: bool = True) -> None:
        """Stop (SIGTERM, SIGKILL after the stop timeout) and remove container ``ref``, by id;
        one already gone is fine. The caller has decided that it may (a fenced removal). The
        removal is one step on one engine, so ``wait`` changes nothing."""
        await self._run("remove", lambda: self._engine.stop_and_remove(ref))
        log.debug("container stopped and removed", extra={"container_id": ref})

    async def logs(self, ref: str, tail: int = 200) -> str:
        """A container's recent log lines, raw: the caller redacts them before showing."""
        return await self._run("logs", lambda: self._engine.logs(ref, tail))

    async def ping(self) -> bool:
        """True when the engine answers; False (never an exception) when it does not."""
        try:
            return await self._run("ping", self._engine.ping)
        except (RuntimeUnavailable, RuntimeRejected):
            return False

    async def image_exists(self, ref: str) -> bool:
        return await self._run("inspect image", lambda: self._engine.image_exists(ref))

    async def events(
        self, stop: asyncio.Event, *, since: float | None = None
    ) -> AsyncGenerator[RuntimeEvent, None]:
        """Yield start/die/destroy (STARTED/ENDED/REMOVED) of this instance's pushers until
        ``stop`` is set.

        The blocking stream is read by a thread of its own and handed to the loop. Events are
        hints, not truth. When the stream breaks (engine restart, network) this raises
        ``RuntimeUnavailable``; the caller backs off, notes ``t = time.time()``, re-lists with
        ``list_managed`` and subscribes again with ``since=t`` (the engine replays the events
        it still holds from that second on), so nothing falls into the gap: Docker never
        needs to yield RELIST. The same subscribe-with-``since`` pattern serves the first
        subscription. Use ``contextlib.aclosing`` so an early ``break`` closes the stream and
        its thread.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stream = await self._run("events", lambda: self._engine.open_events(since))

        def pump() -> None:
            try:
                for raw in stream:
                    loop.call_soon_threadsafe(queue.put_nowait, raw)
            except Exception as exc:  # noqa: BLE001 - handed to the loop and raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        async def put_on_stop() -> None:
            await stop.wait()
            queue.put_nowait(_STOP)

        reader = threading.Thread(target=pump, name="docker-events", daemon=True)
        reader.start()
        watcher = asyncio.ensure_future(put_on_stop())
        try:
            while (item := await queue.get()) is not _STOP:
                if item is _END:
                    if stop.is_set():
                        return
                    raise RuntimeUnavailable("docker event stream ended; re-list and resubscribe")
                if isinstance(item, BaseException):
                    raise translate("events", item) from item
                if not isinstance(item, dict) or (event := event_from_raw(item)) is None:
                    continue
                if event.owned_by(self.instance):
                    yield event
        finally:
            watcher.cancel()
            await asyncio.wait([watcher])
            await asyncio.to_thread(self._close_events, stream, reader)

    def _close_events(self, stream: EventStream, reader: threading.Thread) -> None:
        stream.close()
        reader.join(timeout=self._timeout)

    async def close(self) -> None:
        await asyncio.to_thread(self._engine.close)
        self._run.shutdown()
