"""``POST /api/v1/livekit/webhook``: LiveKit's signed event deliveries (no API key: the
signature is the authentication). See ``orchestrator.livekit.webhooks``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Request

from orchestrator.api.deps import ServicesDep
from orchestrator.api.schemas import ErrorResponse, WebhookAck
from orchestrator.errors import WebhookRejected
from orchestrator.livekit.webhooks import MAX_BODY_BYTES, UNVERIFIED, event_label

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/livekit", tags=["livekit"])


@router.post(
    "/webhook",
    response_model=WebhookAck,
    responses={
        401: {"model": ErrorResponse, "description": "signature, body hash or age check failed"},
        503: {"model": ErrorResponse, "description": "Valkey unavailable: LiveKit retries"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/webhook+json": {"schema": {"type": "object"}}},
        }
    },
)
async def livekit_webhook(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> WebhookAck:
    """Verify the delivery over its raw body, then apply it (idempotent, order-free).

    The ``Authorization`` header is the bare JWT LiveKit signs (no ``Bearer``); its
    ``sha256`` claim must match the body, and it must be at most 5 minutes old.
    """
    metrics = services.metrics
    body = await _bounded_body(request)
    try:
        event = services.webhooks.verify(body, authorization)
    except WebhookRejected as exc:
        metrics.webhook(UNVERIFIED, "rejected")
        log.warning("webhook rejected", extra={"reason": str(exc)})
        raise
    outcome = await services.webhook_effects.apply(event)
    metrics.webhook(event_label(event.event), outcome)
    log.info("webhook", extra={"event": event.event, "event_id": event.id, "outcome": outcome})
    return WebhookAck(status="ok", event=event.event, outcome=outcome)


async def _bounded_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise WebhookRejected("body too large")
        chunks.append(chunk)
    return b"".join(chunks)
