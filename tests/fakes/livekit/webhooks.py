"""Signed webhook delivery, as `protocol/webhook` does it.

The body is `protojson` of `WebhookEvent` (lowerCamelCase, enum names, int64 as strings, zero
values omitted), serialised once; the `Authorization` header is the bare JWT (no `Bearer`) with
`sha256 = base64(sha256(body))`. One FIFO queue drained by one task (stricter than the real
per-resource queues: tests get a total order). Retries on connection errors, 429 and 5xx except
501; any other status counts as delivered. Queue overflow and over-age events are dropped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import jwt
from google.protobuf.json_format import MessageToDict
from livekit.protocol.webhook import WebhookEvent

CONTENT_TYPE = "application/webhook+json"
TOKEN_TTL_SECONDS = 300


@dataclass(frozen=True)
class SignedWebhook:
    """One serialised, signed event: post `body` with `headers()` to deliver it."""

    event: WebhookEvent
    body: str
    authorization: str

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": self.authorization,
            "Content-Type": CONTENT_TYPE,
            "User-Agent": "LiveKit",
        }


def encode_event(event: WebhookEvent) -> str:
    return json.dumps(MessageToDict(event), separators=(",", ":"))


def sign_body(body: str, api_key: str, api_secret: str) -> str:
    """The webhook JWT: iss, iat, nbf, exp (+5 min) and sha256, no sub."""
    now = int(time.time())
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    claims: dict[str, int | str] = {"iss": api_key, "iat": now, "nbf": now}
    claims.update(exp=now + TOKEN_TTL_SECONDS, sha256=digest)
    return jwt.encode(claims, api_secret, algorithm="HS256")


def sign_event(event: WebhookEvent, api_key: str, api_secret: str) -> SignedWebhook:
    body = encode_event(event)
    return SignedWebhook(event, body, sign_body(body, api_key, api_secret))


@dataclass(frozen=True)
class WebhookPolicy:
    attempts: int = 5
    backoff_seconds: float = 0.05  # the real server waits 1, 2, 4, 8 s
    timeout_seconds: float = 5.0
    max_age_seconds: float = 30.0
    max_depth: int = 200


@dataclass(frozen=True)
class WebhookAttempt:
    """One delivery attempt (attempt 0 for an event dropped before any attempt).

    outcome: "delivered" (any non-retryable status, 4xx included, as the real server counts it),
    "retry", "failed" (last attempt failed; event dropped) or "dropped".
    """

    event: str
    event_id: str
    attempt: int
    status: int | None
    error: str | None
    outcome: str
    signed: SignedWebhook


def should_retry(status: int | None) -> bool:
    return status is None or status == 429 or (status >= 500 and status != 501)


@dataclass(frozen=True)
class _Queued:
    signed: SignedWebhook
    enqueued_at: float


class WebhookDispatcher:
    def __init__(
        self,
        api_key: str,
        api_secret: str,
        url: Callable[[], str | None],
        policy: WebhookPolicy,
    ) -> None:
        self._key = api_key
        self._secret = api_secret
        self._url = url
        self.policy = policy
        self.log: list[WebhookAttempt] = []
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue(maxsize=policy.max_depth)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def sign(self, event: WebhookEvent) -> SignedWebhook:
        return sign_event(event, self._key, self._secret)

    def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._task = asyncio.create_task(self._run(), name="fake-livekit-webhooks")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def enqueue(self, event: WebhookEvent) -> None:
        if self._url() is None:
            return
        signed = self.sign(event)
        try:
            self._queue.put_nowait(_Queued(signed, time.monotonic()))
        except asyncio.QueueFull:
            self._record(signed, 0, None, "queue is full", "dropped")

    async def drain(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            await self._queue.join()

    async def post(self, signed: SignedWebhook, url: str | None = None) -> int:
        """One POST of an already-signed event; returns the HTTP status."""
        target = url or self._url()
        if self._session is None or target is None:
            raise RuntimeError("the fake is not running or has no webhook_url")
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout_seconds)
        async with self._session.post(
            target, data=signed.body.encode(), headers=signed.headers(), timeout=timeout
        ) as resp:
            await resp.read()
            return resp.status

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            finally:
                self._queue.task_done()

    async def _deliver(self, item: _Queued) -> None:
        if time.monotonic() - item.enqueued_at > self.policy.max_age_seconds:
            self._record(item.signed, 0, None, "event too old", "dropped")
            return
        for attempt in range(1, self.policy.attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                status = await self.post(item.signed)
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not should_retry(status):
                self._record(item.signed, attempt, status, error, "delivered")
                return
            last = attempt == self.policy.attempts
            self._record(item.signed, attempt, status, error, "failed" if last else "retry")
            if not last:
                await asyncio.sleep(self.policy.backoff_seconds * 2 ** (attempt - 1))

    def _record(
        self,
        signed: SignedWebhook,
        attempt: int,
        status: int | None,
        error: str | None,
        outcome: str,
    ) -> None:
        ev = signed.event
        self.log.append(WebhookAttempt(ev.event, ev.id, attempt, status, error, outcome, signed))
