"""Fault knobs: timing of the real server's slow answers, scripted RPC failures, the hang gate.

* `Timing.publish_delay_seconds`: how long a WHIP session stays in ENDPOINT_BUFFERING before it
  publishes (the real ingress waits for RTP on every offered m-line, up to 10 s).
* `Timing.no_response_seconds`: the psrpc affinity timeout (1 s in psrpc). An RPC to a topic no
  node claims answers only after it: an unknown WHIP DELETE (404) or PATCH (503), a
  RemoveParticipant of a store-only participant (503 `unavailable`).
* `RpcFaults`: make a Twirp method answer a given Twirp error N times, for example 408
  `deadline_exceeded` (an internal psrpc timeout) or 503 `unavailable`, before or after
  the call took effect.
* `HangGate`: a middleware that parks every request until released.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import TWIRP_STATUS, TwirpFailure

# The text the real server sends with each retryable code (psrpc `errors.go`).
DEFAULT_MESSAGES = {
    "deadline_exceeded": "request timed out",
    "unavailable": "no response from servers",
    "resource_exhausted": "server capacity exceeded",
}


@dataclass
class Timing:
    publish_delay_seconds: float = 0.2
    no_response_seconds: float = 1.0


@dataclass
class RpcFault:
    method: str
    code: str
    msg: str
    remaining: int
    after: bool  # answer the error after the call took effect (the client cannot tell)

    def matches(self, name: str) -> bool:
        return self.remaining > 0 and (name == self.method or name.endswith("/" + self.method))


@dataclass
class RpcFaults:
    """Scripted Twirp failures, consumed in the order they were added."""

    plan: list[RpcFault] = field(default_factory=list)
    fired: list[tuple[str, str]] = field(default_factory=list)  # (method path, code)

    def add(self, method: str, code: str, times: int, msg: str | None, after: bool) -> None:
        if code not in TWIRP_STATUS:
            raise ValueError(f"unknown Twirp code {code!r}")
        text = DEFAULT_MESSAGES.get(code, code.replace("_", " ")) if msg is None else msg
        self.plan.append(RpcFault(method, code, text, times, after))

    def take(self, name: str) -> RpcFault | None:
        """The next fault for `name` (a `livekit.<Service>/<Method>` path), consumed."""
        fault = next((f for f in self.plan if f.matches(name)), None)
        if fault is None:
            return None
        fault.remaining -= 1
        self.plan = [f for f in self.plan if f.remaining > 0]
        self.fired.append((name, fault.code))
        return fault

    @staticmethod
    def failure(fault: RpcFault) -> TwirpFailure:
        return TwirpFailure(fault.code, fault.msg)


class HangGate:
    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.waiting = 0
        self.connections: set[object] = set()  # every connection (protocol) that sent a request

    def hang(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.connections.add(request.protocol)
        if not self._open.is_set():
            self.waiting += 1
            try:
                await self._open.wait()
            finally:
                self.waiting -= 1
        return await handler(request)
