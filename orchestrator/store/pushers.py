"""Typed calls of the pusher scripts (``lua/pusher_*.lua``) and a reader of camera states.

Every transition of the pusher state machine is one script: a claim (the fencing
generation), running, failed (with the restart schedule), stop, stopped, and the fence before
an orphan removal.
The scripts decide; this module only builds keys and names the answers.
"""

from __future__ import annotations

import re

from redis.asyncio import Redis

from orchestrator.domain.backoff import RestartPolicy
from orchestrator.domain.codec import CodecReport
from orchestrator.domain.models import Lease
from orchestrator.domain.pusher import PusherView, Snapshot
from orchestrator.store import keys
from orchestrator.store.errors import translated
from orchestrator.store.scripts import Arg, Scripts, outcome

MAX_ERROR_TEXT = 300
_UNSAFE_NODE = re.compile(r"[^A-Za-z0-9._-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PusherStore:
    def __init__(
        self,
        client: Redis,
        scripts: Scripts,
        *,
        owner: str,
        claim_ms: int,
        restart: RestartPolicy,
        clock_offset_ms: int = 0,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self.owner = owner
        self.claim_ms = claim_ms
        self.restart = restart
        self.clock_offset_ms = clock_offset_ms

    async def claim(self, camera_id: str) -> int | None:
        """The new generation when this process now owns the start, else None."""
        keys_ = [keys.metadata(camera_id), keys.camera_leases(camera_id), keys.ACTIVE_CAMERAS]
        args: list[Arg] = [self.clock_offset_ms, self.owner, self.claim_ms, camera_id]
        code, values = outcome(
            "pusher_claim",
            await self._scripts.pusher_claim(keys_, args),
            "NOT_DUE",
            "NO_VIEWERS",
        )
        return int(values[0]) if code == "OK" else None

    async def mark_running(self, camera_id: str, generation: int, container_id: str) -> bool:
        """False when the claim went stale (taken over, or the camera stopped meanwhile)."""
        reply = await self._scripts.pusher_running(
            [keys.metadata(camera_id)],
            [self.clock_offset_ms, generation, container_id],
        )
        code, _ = outcome("pusher_running", reply, "STALE")
        return code == "OK"

    async def mark_failed(
        self,
        camera_id: str,
        generation: int,
        error: str,
        *,
        container_id: str = "",
        min_delay_ms: int = 0,
        displaced: bool = False,
    ) -> int | None:
        """Record a failure and schedule the restart; the retry time (ms), or None if stale.

        ``min_delay_ms``: no restart before then (time for a container still running to go).
        ``displaced``: the runtime took the pusher away (its node died or was drained): the
        restart is due at once, not after the backoff (it still counts as a restart).
        """
        delays = [0] if displaced else self.restart.delays_ms()
        args: list[Arg] = [
            self.clock_offset_ms,
            max(generation, 1),
            container_id,
            error[:MAX_ERROR_TEXT],
            round(self.restart.stable_seconds * 1000),
            *(max(d, min_delay_ms) for d in delays),
        ]
        reply = await self._scripts.pusher_failed([keys.metadata(camera_id)], args)
        code, values = outcome("pusher_failed", reply, "STALE")
        return int(values[1]) if code == "OK" else None

    async def record_codec(self, camera_id: str, generation: int, report: CodecReport) -> bool:
        """Keep what generation ``generation``'s pusher reported; False when it is stale."""
        reply = await self._scripts.codec_report(
            [keys.metadata(camera_id)],
            [self.clock_offset_ms, generation, *report.to_fields()],
        )
        code, _ = outcome("codec_report", reply, "STALE")
        return code == "OK"

    async def record_placement(
        self, camera_id: str, generation: int, ref: str, node: str | None, waiting: str | None
    ) -> bool:
        """Where generation ``generation``'s workload ``ref`` runs, or why it waits; False when
        it is stale (another generation or workload holds the camera)."""
        node_text = _UNSAFE_NODE.sub("_", node or "")[:255]  # the runtime's words, made safe
        waiting_text = _CONTROL.sub(" ", waiting or "")[:300]
        reply = await self._scripts.pusher_placement(
            [keys.metadata(camera_id)],
            [self.clock_offset_ms, generation, ref, node_text, waiting_text],
        )
        code, _ = outcome("pusher_placement", reply, "STALE")
        return code == "OK"

    async def begin_stop(self, camera_id: str, *, force: bool = False) -> int | None:
        """The generation to tear down when this process now owns the stop, else None.

        ``force`` skips the rest of a DRAINING camera's grace (the on-call reset)."""
        reply = await self._scripts.pusher_stop(
            [keys.metadata(camera_id), keys.camera_leases(camera_id)],
            [self.clock_offset_ms, self.owner, self.claim_ms, int(force)],
        )
        code, values = outcome("pusher_stop", reply, "NOT_DUE", "RESUMED")
        return int(values[0]) if code == "OK" else None

    async def stopped(self, camera_id: str, generation: int) -> int | None:
        """After the removal: the next generation when viewers came back (ours to start)."""
        keys_ = [keys.metadata(camera_id), keys.camera_leases(camera_id), keys.ACTIVE_CAMERAS]
        args: list[Arg] = [self.clock_offset_ms, generation, self.owner, self.claim_ms, camera_id]
        reply = await self._scripts.pusher_stopped(keys_, args)
        code, values = outcome("pusher_stopped", reply, "IDLE", "CLAIMED", "STALE")
        return int(values[0]) if code == "CLAIMED" else None

    async def fence(self, camera_id: str, label_generation: int) -> int | None:
        """The generation an orphan removal may touch, or None when the camera is in use."""
        reply = await self._scripts.pusher_fence(
            [keys.metadata(camera_id), keys.camera_leases(camera_id)],
            [self.clock_offset_ms, max(label_generation, 0)],
        )
        code, values = outcome("pusher_fence", reply, "BUSY")
        return int(values[0]) if code == "OK" else None

    async def view(self, camera_id: str) -> PusherView:
        async with translated():
            meta = await self._client.hgetall(keys.metadata(camera_id))
        return PusherView.parse(camera_id, {str(k): str(v) for k, v in meta.items()})

    async def snapshot(self, *, all_watched: bool = False) -> Snapshot:
        """Active cameras' metadata and live lease counts, on the server's clock.

        ``all_watched`` also finds cameras that have live leases but are not in the active
        set (a pusher that should run and is not known to): the reconcile pass asks for it.
        """
        async with translated():
            seconds, micros = await self._client.time()
            now = seconds * 1000 + micros // 1000 + self.clock_offset_ms
            cameras = {str(c) for c in await self._client.smembers(keys.ACTIVE_CAMERAS)}
            if all_watched:
                members = await self._client.zrange(
                    keys.ALL_LEASES, f"({now}", "+inf", byscore=True
                )
                cameras |= {Lease.parse(str(m)).camera_id for m in members}
            ordered = sorted(cameras)
            async with self._client.pipeline(transaction=False) as pipe:
                for camera_id in ordered:
                    pipe.hgetall(keys.metadata(camera_id))
                    pipe.zcount(keys.camera_leases(camera_id), f"({now}", "+inf")
                rows = await pipe.execute()
        views = {c: PusherView.parse(c, rows[2 * i]) for i, c in enumerate(ordered)}
        watched = {c: int(rows[2 * i + 1]) for i, c in enumerate(ordered) if rows[2 * i + 1]}
        return Snapshot(views=views, watched=watched, now_ms=now)
