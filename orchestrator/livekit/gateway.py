"""Async adapter over the ``livekit-api`` client (1.2.x): rooms, participants, WHIP ingress.

Pitfalls handled (docs/architecture.md, "LiveKit facts"):

* The client applies **no timeout** to RPCs (the session timeout is dropped per call), so each
  attempt runs under ``asyncio.wait_for``. ``LiveKitAPI()`` opens an aiohttp session in its
  ``__init__`` and needs a running loop, so it is built in ``start()``.
* Key and secret are passed explicitly (an ambient ``LIVEKIT_TOKEN`` is never used). The
  client's Cloud-only failover is off: retries happen here, once, with tenacity.
* 5xx except 501, 429, 408 (``deadline_exceeded``: LiveKit's internal psrpc call timed out),
  timeouts and transport errors are retried, then ``LiveKitUnavailable``.
  Any other Twirp error, an auth failure (401 ``code="unknown"``) or an undecodable 200 body
  raises ``LiveKitRejected`` at once. ``not_found`` (ListIngress by id, RemoveParticipant,
  DeleteIngress) is an answer: None or False. CreateRoom is get-or-create.
* Retried creates and deletes are not idempotent: a timed-out CreateIngress may have happened
  and a retry then leaves a duplicate (reconcile by room); a retried delete may say False.

The API secret and tokens never reach a message, a log record or a metric label.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api
from livekit.api import LiveKitAPI, ServerError
from prometheus_client import CollectorRegistry
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from orchestrator.errors import LiveKitRejected, LiveKitUnavailable
from orchestrator.metrics import LiveKitMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")
Call = Callable[[LiveKitAPI], Awaitable[T]]

READY_ROOM = "__cctv_ready__"  # ping lists only this (never created) room: a cheap round trip


class LiveKitGateway:
    """The LiveKit server API as this service uses it; errors are translated at this edge."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout_seconds: float = 2.0,
        attempts: int = 3,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not (url and api_key and api_secret):
            raise ValueError("LiveKit url, api key and api secret must all be set")
        self._url, self._key, self._secret = url, api_key, api_secret
        self._timeout = timeout_seconds
        self._attempts = max(1, attempts)
        self._client: LiveKitAPI | None = None
        self._last_error: str | None = None
        self._healthy = True
        # registry None: the metrics exist (tests read them) but are registered nowhere.
        self.metrics = LiveKitMetrics(registry)

    @property
    def last_error(self) -> str | None:
        """Why the latest call failed (None after a success or not_found); never secret."""
        return self._last_error

    @property
    def healthy(self) -> bool:
        """False when the latest call found LiveKit unreachable; True after any answer."""
        return self._healthy

    async def start(self) -> None:
        if self._client is None:
            timeout = aiohttp.ClientTimeout(total=self._timeout)  # not applied to RPCs; see above
            self._client = LiveKitAPI(
                self._url, self._key, self._secret, timeout=timeout, failover=False
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        """True when LiveKit answers an authorised request; LiveKitUnavailable otherwise."""
        request = api.ListRoomsRequest(names=[READY_ROOM])
        try:
            await self._call("ping", lambda c: c.room.list_rooms(request), attempts=1)
        except LiveKitRejected as exc:
            raise LiveKitUnavailable(str(exc)) from exc
        return True

    async def ensure_room(
        self, name: str, *, empty_timeout: int, departure_timeout: int
    ) -> api.Room:
        """Get or create the room. The timeouts (seconds) apply only when this call creates
        it: LiveKit keeps a live room's own."""
        request = api.CreateRoomRequest(
            name=name, empty_timeout=empty_timeout, departure_timeout=departure_timeout
        )
        return await self._call("ensure_room", lambda c: c.room.create_room(request))

    async def list_rooms(self) -> list[api.Room]:
        request = api.ListRoomsRequest()
        return list((await self._call("list_rooms", lambda c: c.room.list_rooms(request))).rooms)

    async def list_participants(self, room: str) -> list[api.ParticipantInfo]:
        """Everyone in ``room`` (an unknown room is an empty list, not an error)."""
        request = api.ListParticipantsRequest(room=room)
        response = await self._call(
            "list_participants", lambda c: c.room.list_participants(request)
        )
        return list(response.participants)

    async def remove_participant(self, room: str, identity: str) -> bool:
        """True when removed now; False when LiveKit does not know that participant."""
        request = api.RoomParticipantIdentity(room=room, identity=identity)
        removed = await self._unless_not_found(
            "remove_participant", lambda c: c.room.remove_participant(request)
        )
        return removed is not None

    async def get_ingress(self, ingress_id: str) -> api.IngressInfo | None:
        request = api.ListIngressRequest(ingress_id=ingress_id)
        response = await self._unless_not_found(
            "get_ingress", lambda c: c.ingress.list_ingress(request)
        )
        items = response.items if response is not None else []  # an empty id lists them all:
        return next((i for i in items if i.ingress_id == ingress_id), None)  # so match the id

    async def list_ingresses(self, room_name: str = "") -> list[api.IngressInfo]:
        """Every ingress, or those of ``room_name`` (OSS LiveKit does not paginate)."""
        request = api.ListIngressRequest(room_name=room_name)
        response = await self._call("list_ingresses", lambda c: c.ingress.list_ingress(request))
        return list(response.items)

    async def create_whip_ingress(
        self, *, name: str, room_name: str, identity: str
    ) -> api.IngressInfo:
        """A WHIP ingress without transcoding that joins ``room_name`` as ``identity``."""
        request = api.CreateIngressRequest(
            input_type=api.IngressInput.WHIP_INPUT,
            name=name,
            room_name=room_name,
            participant_identity=identity,
            participant_name=identity,
            enable_transcoding=False,
        )
        return await self._call("create_whip_ingress", lambda c: c.ingress.create_ingress(request))

    async def delete_ingress(self, ingress_id: str) -> bool:
        """True when deleted now; False when LiveKit does not know the ingress."""
        request = api.DeleteIngressRequest(ingress_id=ingress_id)
        deleted = await self._unless_not_found(
            "delete_ingress", lambda c: c.ingress.delete_ingress(request)
        )
        return deleted is not None

    async def _unless_not_found(self, operation: str, call: Call[T]) -> T | None:
        try:
            return await self._call(operation, call)
        except LiveKitRejected as exc:
            if exc.twirp_code == "not_found":
                return None
            raise

    async def _call(self, operation: str, call: Call[T], *, attempts: int | None = None) -> T:
        """One logical call: bounded attempts, retried, counted once in requests and seconds."""
        started = time.perf_counter()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts or self._attempts),
            wait=wait_exponential_jitter(multiplier=0.1, max=1.0, jitter=0.1),
            retry=retry_if_exception(
                lambda e: isinstance(e, LiveKitUnavailable) and self._client is not None
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    result = await self._attempt(operation, call)
        except LiveKitRejected as exc:
            found = exc.twirp_code == "not_found"
            self._finish(operation, "not_found" if found else "rejected", started, exc)
            raise
        except LiveKitUnavailable as exc:
            self._finish(operation, "unavailable", started, exc)
            log.warning("livekit call failed", extra={"operation": operation, "error": str(exc)})
            raise
        self._finish(operation, "ok", started, None)
        return result

    def _finish(self, operation: str, outcome: str, started: float, exc: Exception | None) -> None:
        self.metrics.requests.labels(operation, outcome).inc()
        self.metrics.seconds.labels(operation).observe(time.perf_counter() - started)
        self._healthy = outcome != "unavailable"
        self._last_error = None if outcome in ("ok", "not_found") else str(exc)

    async def _attempt(self, operation: str, call: Call[T]) -> T:
        """One bounded request; every client error is translated here, with ``from exc``."""
        client = self._client
        if client is None:
            raise LiveKitUnavailable(f"livekit {operation}: gateway not started")
        failure: Exception
        try:
            return await asyncio.wait_for(call(client), self._timeout)
        except ServerError as exc:
            if exc.status == 429:
                kind = "rate_limited"
            elif exc.status == 408:  # deadline_exceeded: LiveKit's internal RPC timed out
                kind = "deadline_exceeded"
            elif exc.status >= 500 and exc.status != 501:
                kind = "server_5xx"
            else:
                raise self._rejected(operation, exc.code, exc.status, exc.message) from exc
            failure = exc
        except DecodeError as exc:  # a 200 that is not protobuf: not LiveKit at this URL
            raise self._rejected(operation, "bad_response", 200, "undecodable body") from exc
        except TimeoutError as exc:  # also asyncio.TimeoutError; caught before OSError
            kind, failure = "timeout", exc
        except (aiohttp.ClientError, OSError) as exc:
            kind, failure = "connection", exc
        self.metrics.errors.labels(operation, kind).inc()
        raise LiveKitUnavailable(f"livekit {operation}: {kind}") from failure

    def _rejected(self, operation: str, code: str, status: int, detail: str) -> LiveKitRejected:
        if code != "not_found":  # not_found is an answer, not a failed attempt
            self.metrics.errors.labels(operation, "rejected").inc()
        detail = detail.replace(self._secret, "***")[:200]
        message = f"livekit {operation}: {code} (HTTP {status}) {detail}".rstrip()
        return LiveKitRejected(message, code=code, status=status)
