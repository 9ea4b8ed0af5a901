"""The ``GET /api/v1/stream/stats`` body, serialized once per snapshot and reused.

The body is the :class:`~orchestrator.api.schemas.StatsResponse` JSON, written here by hand
because it is the hot path of every dashboard poll:

* each camera's object is serialized once and kept while the reader hands back the same
  :class:`CameraStat` (it does so for cameras whose data did not change), so a new snapshot
  costs the serialization of the cameras that changed and one join;
* :class:`StatsBody` holds everything but the last two fields (``timestamp``, the snapshot's
  Valkey time, and ``snapshot_age_ms``): its ETag is a hash of that content, so it changes
  when the data does and not merely because time passed, and a poller's ``If-None-Match``
  gets a 304;
* :meth:`StatsBody.with_age` adds the two fields per response: one copy of the bytes.

``tests/integration/test_stats_snapshot.py`` checks the bytes against the pydantic model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.api.timefmt import iso, iso_required
from orchestrator.stats_snapshot import SharedReads, Snapshot
from orchestrator.store.stats import YIELD_EVERY, CameraStat, SourceStat, StreamStats


@dataclass(frozen=True, slots=True)
class StatsBody:
    content: bytes  # the JSON object up to its last two fields, without the closing brace
    etag: str  # quoted, strong
    timestamp: str

    def with_age(self, age_ms: int) -> bytes:
        tail = f',"timestamp":"{self.timestamp}","snapshot_age_ms":{age_ms}}}'
        return self.content + tail.encode()


def _dumps(value: Any) -> bytes:
    # What FastAPI's JSONResponse writes.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def camera_json(c: CameraStat) -> dict[str, Any]:
    """One camera as :class:`~orchestrator.api.schemas.CameraStats` (same fields, same order)."""
    return {
        "camera_id": c.camera_id,
        "camera_name": c.camera_name,
        "viewer_count": c.viewer_count,
        "reserved_count": c.reserved_count,
        "publisher_connected": c.publisher_connected,
        "ingress_status": c.ingress_status,
        "viewers_by_source": c.viewers_by_source,
        "source": c.source,
        "active_since": iso(c.active_since_ms),
        "pusher_state": c.pusher_state,
        "generation": c.generation,
        "restarts": c.restarts,
        "last_error": c.last_error,
        "next_retry_at": iso(c.retry_at_ms),
        "codec": asdict(c.codec) if c.codec is not None else None,
        "node": c.node,
        "waiting_for": c.waiting,
    }


def source_json(s: SourceStat) -> dict[str, Any]:
    usage = round(100.0 * s.current / s.limit, 1) if s.limit else 0.0
    return {
        "source": s.source,
        "current": s.current,
        "limit": s.limit,
        "usage_percent": usage,
        "active_cameras": s.active_cameras,
    }


class StatsBodies:
    """Renders snapshots, each once however many requests ask for it at the same time; keeps
    the last body and each camera's serialized object. Rendering yields to the event loop
    every :data:`YIELD_EVERY` cameras, so requests are not held up behind it."""

    def __init__(self) -> None:
        self._last: tuple[Snapshot[StreamStats], asyncio.Future[StatsBody]] | None = None
        self._cameras: dict[str, tuple[CameraStat, bytes]] = {}

    async def body(self, snapshot: Snapshot[StreamStats]) -> StatsBody:
        last = self._last
        if last is None or last[0] is not snapshot:
            last = (snapshot, asyncio.ensure_future(self._render(snapshot.stats)))
            self._last = last
        return await asyncio.shield(last[1])

    async def _render(self, stats: StreamStats) -> StatsBody:
        previous, cameras = self._cameras, {}
        parts: list[bytes] = []
        for i, camera in enumerate(stats.cameras, 1):
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            known = previous.get(camera.camera_id)
            part = known[1] if known is not None and known[0] is camera else None
            if part is None:
                part = _dumps(camera_json(camera))
            cameras[camera.camera_id] = (camera, part)
            parts.append(part)
        self._cameras = cameras
        head = {
            "active_streams": sum(1 for c in stats.cameras if c.reserved_count > 0),
            "total_viewers": sum(c.viewer_count for c in stats.cameras),
            "total_reserved": stats.total_current,
            "source_stats": {s.source: source_json(s) for s in stats.sources},
        }
        total = {"current": stats.total_current, "limit": stats.total_limit}
        content = b"".join(
            (
                _dumps(head)[:-1],
                b',"camera_stats":[',
                b",".join(parts),
                b'],"total":',
                _dumps(total),
            )
        )
        etag = f'"{hashlib.blake2b(content, digest_size=16).hexdigest()}"'
        return StatsBody(content, etag, iso_required(stats.timestamp_ms))


@dataclass(frozen=True, slots=True)
class StatsReply:
    """What ``GET /api/v1/stream/stats`` answers: 200 with the body, or 304 without one."""

    status: int
    headers: dict[str, str]
    content: bytes


async def stats_reply(
    snapshots: SharedReads[StreamStats], bodies: StatsBodies, if_none_match: str | None
) -> StatsReply:
    """The reply to one poll, from the shared snapshot: the route and the fast path
    (``api/stats_fast.py``) both answer with it."""
    snapshot = await snapshots.snapshot()
    body = await bodies.body(snapshot)
    age_s = snapshot.age_s(snapshots.clock())
    headers = {"ETag": body.etag, "Age": str(int(age_s)), "Cache-Control": "no-cache"}
    if etag_matches(if_none_match, body.etag):
        return StatsReply(304, headers, b"")
    return StatsReply(200, headers, body.with_age(round(age_s * 1000)))


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison against each listed tag, or ``*``."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
