"""The one way an adapter reports a taken pusher name: the holder read back and logged, then
``ContainerConflict`` carrying it (None when it vanished before it could be read). The holder
is left exactly as it was; the lifecycle decides (``pusher/placement.py``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from orchestrator.domain.containers import ContainerConflict, PusherSpec, Workload
from orchestrator.runtime.sync_engine import NameTaken

log = logging.getLogger(__name__)


async def create_unique(
    spec: PusherSpec,
    name: str,
    create: Callable[[], Awaitable[Workload]],
    holder: Callable[[str], Awaitable[Workload | None]],
) -> Workload:
    """``create()``; when the engine answers that ``name`` is taken (``NameTaken``), raise
    ``ContainerConflict`` with ``holder(camera_id)``."""
    try:
        return await create()
    except NameTaken as exc:
        existing = await holder(spec.camera_id)
        log.warning(
            "pusher name taken",
            extra={
                "camera_id": spec.camera_id,
                "generation": spec.generation,
                "image": spec.image,
                "container_id": existing.ref if existing else None,
                "existing_generation": existing.generation if existing else None,
            },
        )
        raise ContainerConflict(f"{name} already exists", existing=existing) from exc
