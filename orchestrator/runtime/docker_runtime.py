"""Async adapter over the synchronous docker SDK (docker 7.x).

Every SDK call runs in a worker thread of the runtime's own pool (``workers`` threads, so
fifty teardowns at once do not queue behind the loop's small default pool) through
:class:`~orchestrator.runtime.sync_engine.SyncEngine`; every docker or requests error is
translated here with ``raise ... from exc`` into ``RuntimeUnavailable`` (temporary),
``RuntimeRejected`` (permanent) or ``ContainerConflict``, and never leaks.

Conflict policy: ``create_and_start`` never replaces a container. When the name is taken it
raises ``ContainerConflict`` carrying the holder's ``ContainerInfo``; the caller adopts it when
it is managed and of an acceptable generation. ``remove`` deletes only the exact container it
inspected (by id), and only when its generation label is not newer than the caller's.

A call that is cancelled while its thread runs still completes in the engine (a create may
leave a started container behind); the reconciler's ``list_managed`` finds it.

Nothing secret is logged: env values never reach a log call, only ``extra`` ids and numbers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from orchestrator.domain.containers import (
    ContainerConflict,
    ContainerEvent,
    ContainerInfo,
    PusherSpec,
)
from orchestrator.domain.ids import container_name, validate_camera_id
from orchestrator.errors import RuntimeRejected, RuntimeUnavailable
from orchestrator.runtime.parsing import event_from_raw
from orchestrator.runtime.sync_engine import (
    SDK_ERRORS,
    EventStream,
    NameTaken,
    SyncEngine,
    translate,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_END = object()  # the event stream closed
_STOP = object()  # the caller's stop event was set


class DockerRuntime:
    """The pusher containers on one Docker engine.

    ``base_url`` None reads ``DOCKER_HOST`` (and the TLS variables) like the docker CLI. The
    client connects lazily, so constructing this never blocks; ``timeout_seconds`` bounds every
    request (a stop waits ``stop_timeout_seconds`` on top, then the engine kills).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout_seconds: float = 10.0,
        stop_timeout_seconds: int = 10,
        workers: int = 32,
    ) -> None:
        self._timeout = timeout_seconds
        self.stop_timeout_seconds = stop_timeout_seconds
        self._engine = SyncEngine(
            base_url,
            timeout_seconds=timeout_seconds,
            stop_timeout=stop_timeout_seconds,
            pool_size=workers,
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docker")

    async def _run(self, op: str, fn: Callable[[], T], secrets: Iterable[str] = ()) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except SDK_ERRORS as exc:
            raise translate(op, exc, secrets) from exc

    async def create_and_start(self, spec: PusherSpec) -> ContainerInfo:
        """Create and start ``whip-pusher-<camera_id>``.

        Raises ``ContainerConflict`` (with ``existing``, None when the holder vanished before
        it could be read) when a container already holds the name; that container is left
        exactly as it was. No retry here: the lifecycle owns the one retry layer.
        """
        fields = {"camera_id": spec.camera_id, "generation": spec.generation, "image": spec.image}
        secrets = tuple(spec.env.values())
        try:
            info = await self._run("create", lambda: self._engine.create_and_start(spec), secrets)
        except NameTaken as exc:
            existing = await self.get(spec.camera_id)  # None: the holder vanished meanwhile
            log.warning(
                "pusher name taken",
                extra={
                    **fields,
                    "container_id": existing.id if existing else None,
                    "existing_generation": existing.generation if existing else None,
                },
            )
            raise ContainerConflict(f"{spec.name} already exists", existing=existing) from exc
        log.info("pusher container started", extra={**fields, "container_id": info.id})
        return info

    async def get(self, camera_id: str) -> ContainerInfo | None:
        """The container named ``whip-pusher-<camera_id>`` (managed or not), or None."""
        name = container_name(validate_camera_id(camera_id))
        return await self._run("inspect", lambda: self._engine.inspect(name))

    async def list_managed(self) -> list[ContainerInfo]:
        """Every container with our managed-by label, in any state."""
        return await self._run("list", self._engine.list_managed)

    async def remove(self, camera_id: str, max_generation: int) -> bool:
        """Stop and remove the camera's container unless it is newer than ``max_generation``.

        True when no container is left (removed now, or already gone); False when refused
        (a newer generation, or a container that is not ours). A managed container without a
        generation label counts as generation 0.
        """
        info = await self.get(camera_id)
        if info is None:
            return True
        fields = {"camera_id": camera_id, "container_id": info.id, "generation": info.generation}
        if not info.managed:
            log.warning("refusing to remove an unmanaged container", extra=fields)
            return False
        if (info.generation or 0) > max_generation:
            log.info(
                "keeping a newer generation", extra={**fields, "max_generation": max_generation}
            )
            return False
        await self._run("remove", lambda: self._engine.stop_and_remove(info.id))
        log.info("pusher container removed", extra=fields)
        return True

    async def logs(self, container_id: str, tail: int = 200) -> str:
        """A container's recent log lines, raw: the caller redacts them before showing."""
        return await self._run("logs", lambda: self._engine.logs(container_id, tail))

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
    ) -> AsyncGenerator[ContainerEvent, None]:
        """Yield start/die/destroy events of managed containers until ``stop`` is set.

        The blocking stream is read by a thread of its own and handed to the loop. Events are
        hints, not truth. When the stream breaks (engine restart, network) this raises
        ``RuntimeUnavailable``; the caller backs off, notes ``t = time.time()``, re-lists with
        ``list_managed`` and subscribes again with ``since=t`` (the engine replays the events
        it still holds from that second on), so nothing falls into the gap. The same
        subscribe-with-``since`` pattern serves the first subscription.
        Use ``contextlib.aclosing`` so an early ``break`` closes the stream and its thread.
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
                if isinstance(item, dict) and (event := event_from_raw(item)) is not None:
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
        self._pool.shutdown(wait=False, cancel_futures=True)
