"""`FakeLiveKit`: a wire-level LiveKit server (Twirp, WHIP, webhooks) on 127.0.0.1.

    async with FakeLiveKit(KEY, SECRET, webhook_url=url) as lk:
        async with LiveKitAPI(lk.url, KEY, SECRET, timeout=...) as api: ...
        lk.join(viewer_token); lk.leave(room, identity); await lk.drain_webhooks()

What it models, and where the real server is stricter than a naive fake:
a WHIP publish buffers before it publishes and can end in ERROR (`sessions.py`), a second
WHIP POST evicts the first publisher, WHIP DELETE/PATCH details (`whip.py`),
CreateRoom keeps a live room's settings (`room_table.py`), JOINING participants and
`participant_connection_aborted`, store-only participants whose RemoveParticipant
answers 503 (`rooms.py`), retryable 408/503 Twirp errors (`faults.py`). The
test-control API is in `control.py`.

Fault knobs: `stop()`/`start()` close and re-open the listener on the same port (state kept);
`hang()` accepts requests but answers none until `release()`; `fail_rpc` scripts Twirp errors.
Remember the real client does not apply its own timeout to RPCs: wrap
calls in `asyncio.wait_for`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Unpack

import aiohttp
from aiohttp import web
from livekit.protocol.ingress import IngressInfo
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

from .control import Controls
from .events import Clock, EventBus, EventParts
from .faults import HangGate, RpcFaults, Timing
from .ingresses import IngressStore
from .rooms import RoomStore
from .rpc import build_rpcs
from .sessions import WhipSession, WhipSessions
from .twirp import PREFIX, Handler, twirp_handler
from .webhooks import SignedWebhook, WebhookAttempt, WebhookDispatcher, WebhookPolicy
from .whip import APP, WhipEndpoints


class FakeLiveKit(Controls):
    def __init__(
        self,
        api_key: str,
        api_secret: str,
        webhook_url: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        whip_upstream: str | None = None,
        whip_base_url: str | None = None,
        webhook_policy: WebhookPolicy | None = None,
        clock: Clock = time.time,
        publish_delay_seconds: float = 0.2,
        no_response_seconds: float = 1.0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.webhook_url = webhook_url
        self.host = host
        self.whip_base_url = whip_base_url
        self.port = port
        self._clock = clock
        self._webhooks = WebhookDispatcher(
            api_key, api_secret, lambda: self.webhook_url, webhook_policy or WebhookPolicy()
        )
        self._timing = Timing(publish_delay_seconds, no_response_seconds)
        self._faults = RpcFaults()
        self._bus = EventBus(clock, self._webhooks.enqueue)
        self._rooms = RoomStore(self._bus, clock)
        self._ingresses = IngressStore(lambda: self.whip_url)
        self._sessions = WhipSessions(self._rooms, self._ingresses, self._bus, clock, self._timing)
        self._whip = WhipEndpoints(
            self._ingresses, self._sessions, self._http, self._timing, whip_upstream
        )
        self._gate = HangGate()
        self.twirp_calls: list[str] = []
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> FakeLiveKit:
        self._client = aiohttp.ClientSession()
        self._webhooks.start(self._client)
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen (again) on `host:port`; the first start picks an ephemeral port."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._gate.middleware])
        handler: Handler = twirp_handler(
            self.api_key, self.api_secret, build_rpcs(self._rooms, self._ingresses),
            self.twirp_calls, self._faults, self._timing,
        )  # fmt: skip
        app.router.add_route("*", PREFIX + "{path:.*}", handler)
        self._whip.register(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening (connections refused); in-flight or hung requests are dropped."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            ours = {*self._gate.connections, *(runner.server.connections if runner.server else ())}
            self._gate.connections.clear()
            await runner.cleanup()
            await _handlers_finished(ours)

    async def close(self) -> None:
        self._gate.release()
        await self.stop()
        await self._sessions.close()
        await self._whip.close()
        await self._webhooks.close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None:
            raise RuntimeError("FakeLiveKit is not running")
        return self._client

    # ---- addresses -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def whip_url(self) -> str:
        """`IngressInfo.url`: the WHIP base (`whip_base_url`); a test may point it elsewhere."""
        return self.whip_base_url or self.url + APP

    # ---- faults ----------------------------------------------------------------------------
    def hang(self) -> None:
        """Accept every request from now on but answer none until `release()`."""
        self._gate.hang()

    def release(self) -> None:
        self._gate.release()

    @property
    def hung_requests(self) -> int:
        """How many requests are waiting in the hang right now."""
        return self._gate.waiting

    # ---- state views (copies) --------------------------------------------------------------
    def rooms(self) -> dict[str, Room]:
        return {name: self._rooms.snapshot(name) for name in self._rooms.names()}

    def participants(self, room: str) -> list[ParticipantInfo]:
        return self._rooms.participants(room)

    def ingresses(self) -> dict[str, IngressInfo]:
        return {i.ingress_id: i for i in self._ingresses.all()}

    @property
    def whip_sessions(self) -> dict[str, WhipSession]:
        """The WHIP sessions whose resource is alive (a DELETE on them answers 200)."""
        return dict(self._sessions.sessions)

    @property
    def events(self) -> list[WebhookEvent]:
        """Every event emitted so far, whether or not a webhook URL was set."""
        return list(self._bus.history)

    # ---- webhooks --------------------------------------------------------------------------
    @property
    def webhook_log(self) -> list[WebhookAttempt]:
        return list(self._webhooks.log)

    async def drain_webhooks(self, timeout: float = 5.0) -> None:
        """Wait until every queued webhook has been delivered, retried out or dropped."""
        await self._webhooks.drain(timeout)

    def new_event(self, name: str, **parts: Unpack[EventParts]) -> WebhookEvent:
        """A fresh event (new `EV_` id, `created_at` now) that is not sent anywhere: ``room``,
        ``participant``, ``ingress_info`` as given."""
        return self._bus.build(name, **parts)

    def sign_event(self, event: WebhookEvent) -> SignedWebhook:
        """Serialise and sign any event exactly as a delivery would."""
        return self._webhooks.sign(event)

    def enqueue_event(self, event: WebhookEvent) -> None:
        """Deliver `event` through the ordered queue (with retries), after what is queued."""
        self._webhooks.enqueue(event)

    async def post_webhook(self, signed: SignedWebhook, url: str | None = None) -> int:
        """POST one signed event once, outside the queue (duplicates, reordering)."""
        return await self._webhooks.post(signed, url)


async def _handlers_finished(connections: Collection[object], timeout: float = 2.0) -> None:
    """Wait (bounded) for the request handlers of ``connections`` (this server's) that the
    cleanup cancelled: a delayed answer (the no-response delay, a hung request) is still
    unwinding when ``cleanup`` returns. Other aiohttp servers' handlers are not waited for."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        pending = [
            t for t in asyncio.all_tasks() if not t.done() and _connection_of(t) in connections
        ]
        if not pending:
            return
        await asyncio.wait(pending, timeout=min(left, 0.05))


def _connection_of(task: asyncio.Task[object]) -> object:
    """The aiohttp connection (``RequestHandler``) whose method ``task`` runs, if any."""
    coro = task.get_coro()
    if not getattr(coro, "__qualname__", "").startswith("RequestHandler."):
        return None
    frame = getattr(coro, "cr_frame", None)
    return None if frame is None else frame.f_locals.get("self")
