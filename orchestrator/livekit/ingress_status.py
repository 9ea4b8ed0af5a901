"""A camera ingress's status, from a webhook or a listing; an ERROR ends the pusher's session.

LiveKit's WHIP ingress without transcoding answers the POST at once and sits in BUFFERING
(no webhook); it goes PUBLISHING (``ingress_started``) once every offered track delivered
media within 10 s, else ERROR "source encoder not ready" (``ingress_ended``), and a minute
without media also ends in ERROR. An ERROR means the WHIP session the
pusher holds is over, so the pusher is restarted with the usual backoff and the error becomes
its ``last_error``. Webhooks and the periodic listing both come through here: the script
applies a status only when it is newer than the recorded one, so each ERROR acts once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from livekit.protocol.ingress import IngressInfo, IngressState

from orchestrator.store.ingresses import IngressRecords

# camera id, LiveKit's error text, when the ingress failed (ms, LiveKit's clock)
IngressFailed = Callable[[str, str, int], Awaitable[None]]


def status_at_ns(state: IngressState) -> int:
    """When ``state`` was last changed (ns): LiveKit stamps updated, started and ended."""
    return max(state.updated_at, state.started_at, state.ended_at)


class IngressStatus:
    def __init__(self, records: IngressRecords, on_error: IngressFailed | None = None) -> None:
        self._records = records
        self.on_error = on_error

    async def record(self, event_id: str, camera_id: str, info: IngressInfo) -> str:
        """Record ``info``'s state for the camera; returns the script's outcome."""
        state = info.state
        at_ns = status_at_ns(state)
        outcome = await self._records.ingress_event(
            event_id,
            camera_id,
            ingress_id=info.ingress_id,
            status=IngressState.Status.Name(state.status),
            at_ns=at_ns,
            error=state.error,
        )
        failed = state.status == IngressState.ENDPOINT_ERROR
        if outcome == "applied" and failed and self.on_error is not None:
            await self.on_error(camera_id, state.error or "ingress error", at_ns // 1_000_000)
        return outcome
