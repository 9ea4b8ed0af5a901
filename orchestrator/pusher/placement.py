"""What the lifecycle decides about the holder of a pusher's name (docs/architecture.md,
flows 1 and 2, and "The runtime port").

Runtimes only report: a create that finds the name taken raises ``ContainerConflict`` with the
holder, and ``get`` tells who holds a name. The decisions are taken here, the same for every
runtime:

- **create**: a running pusher of ours is adopted (never replaced); a stopped or pending one
  of ours that is not newer than the claim is cleared and the create tried again; a holder
  that is not ours (no managed label, or another deployment instance) or of a newer
  generation is refused (``RuntimeRejected``) and never touched.
- **remove** (the generation fence): a removal for generation G removes the holder only when
  it is ours and its generation label is at most G (no label counts as 0); nothing held is
  success; anything else is refused and left alone.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from orchestrator.domain.containers import ContainerConflict, PusherSpec, Workload
from orchestrator.domain.runtime import PusherRuntime
from orchestrator.errors import RuntimeRejected, RuntimeUnavailable

log = logging.getLogger(__name__)

CREATE_ATTEMPTS = 2  # a second create after clearing the holder, or after it vanished


class Verdict(StrEnum):
    ADOPT = "adopt"  # a running pusher of ours holds the name: use it
    REPLACE = "replace"  # ours, not running, not newer: clear it and create again
    VANISHED = "vanished"  # gone between the conflict and the read: create again
    FOREIGN = "foreign"  # not ours (unmanaged, or another deployment's): never touched
    NEWER = "newer"  # ours, not running, of a newer generation: never touched


def judge_holder(
    holder: Workload | None, camera_id: str, generation: int, instance: str
) -> Verdict:
    """What a start of camera ``camera_id``'s ``generation`` does about the holder of its
    name. A holder labelled for another camera (a runtime whose names fold case or hash ids
    could map two cameras to one name) is foreign too."""
    if holder is None:
        return Verdict.VANISHED
    if not holder.owned_by(instance) or holder.camera_id != camera_id:
        return Verdict.FOREIGN
    if holder.running:
        return Verdict.ADOPT
    if (holder.generation or 0) > generation:
        return Verdict.NEWER
    return Verdict.REPLACE


def may_remove(holder: Workload, camera_id: str, max_generation: int, instance: str) -> bool:
    """The generation fence: ours, of this camera, and not newer than ``max_generation``."""
    return (
        holder.owned_by(instance)
        and holder.camera_id == camera_id
        and (holder.generation or 0) <= max_generation
    )


async def create_or_adopt(runtime: PusherRuntime, spec: PusherSpec) -> Workload:
    """The camera's pusher for ``spec``: created, or the running one of ours adopted."""
    for _ in range(CREATE_ATTEMPTS):
        try:
            return await runtime.create_and_start(spec)
        except ContainerConflict as conflict:
            holder = conflict.existing
            verdict = judge_holder(holder, spec.camera_id, spec.generation, runtime.instance)
            if verdict is Verdict.VANISHED or holder is None:
                continue
            fields = {
                "camera_id": spec.camera_id,
                "generation": spec.generation,
                "container_id": holder.ref,
                "holder_generation": holder.generation,
                "verdict": str(verdict),
            }
            if verdict is Verdict.FOREIGN:
                whose = (
                    "something we do not manage"
                    if not holder.managed
                    else "another deployment"
                    if not holder.owned_by(runtime.instance)
                    else f"camera {holder.camera_id}"
                )
                raise RuntimeRejected(f"{holder.name} is held by {whose}") from conflict
            if verdict is Verdict.NEWER:
                raise RuntimeRejected(f"{holder.name} belongs to a newer generation") from conflict
            if verdict is Verdict.ADOPT:
                log.info("adopting the running pusher", extra=fields)
                return holder
            log.info("clearing a stopped pusher of an older generation", extra=fields)
            await runtime.remove(holder.ref, wait=not holder.displaced)
    raise RuntimeUnavailable(
        f"the pusher name of camera {spec.camera_id} stayed taken", runtime=runtime.kind
    )


async def remove_fenced(runtime: PusherRuntime, camera_id: str, max_generation: int) -> bool:
    """Remove the camera's pusher unless it is newer than ``max_generation`` or not ours.

    True when nothing of ours is left under the name (removed now, or nothing there); False
    when refused (a newer generation, or a holder that is not ours)."""
    holder = await runtime.get(camera_id)
    if holder is None:
        return True
    fields = {
        "camera_id": camera_id,
        "container_id": holder.ref,
        "generation": holder.generation,
        "max_generation": max_generation,
    }
    if not holder.owned_by(runtime.instance) or holder.camera_id != camera_id:
        log.warning("refusing to remove a pusher that is not ours", extra=fields)
        return False
    if not may_remove(holder, camera_id, max_generation, runtime.instance):
        log.info("keeping a newer generation", extra=fields)
        return False
    await runtime.remove(holder.ref)
    log.info("pusher container removed", extra=fields)
    return True
