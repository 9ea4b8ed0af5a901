"""The runtime port: what the lifecycle, the reconcile pass and the watcher need from
whatever runs pushers (docs/architecture.md, "The runtime port").

Adapters implement it (``runtime/docker_runtime.py``; the tests' ``tests/fakes/runtime.py``)
and this module imports none of them. Every adapter, on its own:

- maps a camera to its workload's name (``whip-pusher-<camera_id>``) and labels each
  workload with the spec's labels, the deployment instance among them;
- lists, gets and reports events only of this deployment's instance (``get`` excepted: it
  reports whatever holds the camera's name, so the lifecycle can refuse it);
- never replaces a holder of the name: ``create_and_start`` raises ``ContainerConflict``;
- never restarts a pusher on its own: a death is reported, and the lifecycle restarts it
  with its backoff;
- resumes its event watch from ``since`` (the engine's replay, or a poll), and yields
  ``EventKind.RELIST`` when it may have missed something;
- translates its engine's errors into ``RuntimeUnavailable`` (temporary, with the
  runtime's name as ``dependency``) or ``RuntimeRejected`` (permanent).

Decisions stay above the port, in the lifecycle (``pusher/placement.py``): whether a holder is
adopted, cleared or refused, and the generation fence of every removal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Protocol

from orchestrator.domain.containers import PusherSpec, RuntimeEvent, Workload


class PusherRuntime(Protocol):
    @property
    def kind(self) -> str:
        """The runtime's name (``docker``): the ``/ready`` check and the dependency label."""
        ...

    @property
    def instance(self) -> str:
        """The deployment instance (``CCTV_INSTANCE``) whose pushers this runtime sees."""
        ...

    @property
    def stop_grace_seconds(self) -> int:
        """How long a removal lets a pusher stop before it is killed."""
        ...

    async def create_and_start(self, spec: PusherSpec) -> Workload:
        """Create and start the camera's pusher; RUNNING (or PENDING while it is placed).

        Raises ``ContainerConflict`` carrying the holder when the name is taken."""
        ...

    async def get(self, camera_id: str) -> Workload | None:
        """Whatever holds the camera's name (ours, another deployment's, foreign), or None."""
        ...

    async def list_managed(self) -> list[Workload]:
        """Every pusher of this deployment instance, in any phase."""
        ...

    async def remove(self, ref: str, *, wait: bool = True) -> None:
        """Stop (within the stop grace) and remove exactly ``ref``; gone already is fine.

        ``wait`` False: do not wait for it to stop (a pusher its runtime displaced: its node
        is draining it, and the camera's next pusher may start meanwhile; LiveKit's ingress
        keeps the newer publisher). A runtime whose removal is one step ignores it."""
        ...

    async def logs(self, ref: str, tail: int = 200) -> str:
        """Recent log lines of ``ref``, raw ("" when gone): callers redact before showing."""
        ...

    async def ping(self) -> bool:
        """True when the runtime answers; False (never an exception) when it does not."""
        ...

    def events(
        self, stop: asyncio.Event, *, since: float | None = None
    ) -> AsyncGenerator[RuntimeEvent, None]:
        """This instance's pushers' STARTED/ENDED/REMOVED (hints), and RELIST, from
        ``since`` (unix seconds) until ``stop`` is set. Raises ``RuntimeUnavailable`` when
        the watch breaks: the caller re-lists and subscribes again."""
        ...

    async def close(self) -> None: ...
