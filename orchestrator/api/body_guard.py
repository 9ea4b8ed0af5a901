"""Request bodies are bounded before anything parses them, and refused before anything reads
them when the caller has no key. A plain ASGI middleware.

For a request that carries a body (``Content-Length`` over 0, or a ``Transfer-Encoding``):

1. the size first: a ``Content-Length`` over the route's cap gets 413 at once, nothing read;
   a chunked body (no length) is read into one buffer, never past the cap (413 as it passes
   it), within the body timeout (408);
2. then the key: a route that needs one gets 401 when the bearer key is missing or unknown,
   before any byte is read when the length is known, and before anything parses the body;
3. otherwise the body is read (bounded as above) and replayed to the app in one message.

Early answers leave body unread, so they carry ``Connection: close`` and uvicorn closes the
connection after them. A client that hangs up mid-body gets no answer, and no error is
logged. Requests without a body pass straight through (the app checks keys as always).

It sits inside the timing and CORS middleware (neither reads a body), so its answers are
counted per route and carry CORS headers.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api.errors import early_answer
from orchestrator.api.route_policy import RoutePolicies, RoutePolicy, document
from orchestrator.api.routes_livekit import livekit_webhook
from orchestrator.auth import KeyRing
from orchestrator.config import Settings
from orchestrator.errors import BodyTimeout, BodyTooLarge, OrchestratorError, Unauthorized
from orchestrator.livekit.webhooks import MAX_BODY_BYTES


def install(app: FastAPI, settings: Settings) -> None:
    """Guard every request body of ``app`` and document the answers in its OpenAPI. Call it
    before adding the timing and CORS middleware, so that they wrap the guard."""

    @functools.cache
    def policies() -> RoutePolicies:
        caps = {livekit_webhook: MAX_BODY_BYTES}
        return RoutePolicies(app.routes, cap=settings.http_max_body_bytes, caps=caps)

    def keyring() -> KeyRing | None:
        services = getattr(app.state, "services", None)
        return services.keyring if services is not None else None

    timeout = settings.http_body_timeout_seconds
    app.add_middleware(BodyGuard, policies=policies, keyring=keyring, timeout_seconds=timeout)
    document(app, policies)


class BodyGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: Callable[[], RoutePolicies],
        keyring: Callable[[], KeyRing | None],
        timeout_seconds: float,
    ) -> None:
        self.app = app
        self._policies = policies  # the routes are complete only once the app serves
        self._keyring = keyring  # exists once the lifespan has run
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = _body_length(scope) if scope["type"] == "http" else 0
        if length == 0:
            await self.app(scope, receive, send)
            return
        policy = self._policies().match(scope)
        if policy.route is not None:
            scope["route"] = policy.route  # the timing label of an early answer
        outcome: bytes | OrchestratorError | None
        if length is None:  # chunked: only reading tells its size, and never past the cap
            outcome = await self._read(receive, policy.cap)
            if isinstance(outcome, bytes):
                outcome = self._unauthorized(scope, policy) or outcome
        elif length > policy.cap:
            outcome = BodyTooLarge(f"request body of {length} bytes is over {policy.cap} bytes")
        else:
            outcome = self._unauthorized(scope, policy) or await self._read(receive, policy.cap)
        if isinstance(outcome, bytes):
            await self.app(scope, _replay(outcome, receive), send)
        elif outcome is not None:  # None: the client went away, nobody to answer (a 499)
            await early_answer(outcome)(scope, receive, send)

    def _unauthorized(self, scope: Scope, policy: RoutePolicy) -> OrchestratorError | None:
        keyring = self._keyring()
        if not policy.needs_key or keyring is None:
            return None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, key = get_authorization_scheme_param(header.decode("latin-1"))
        if not key or scheme.lower() != "bearer":
            return Unauthorized("missing bearer API key")
        if keyring.authenticate(key) is None:
            return Unauthorized("unknown API key")
        return None

    async def _read(self, receive: Receive, cap: int) -> bytes | OrchestratorError | None:
        """The body, or the refusal to answer, or None when the client went away.

        Refusals are returned, never raised: a raised one kept in a local would hold its
        traceback, and with it this frame's buffer, in a cycle only the collector frees.
        """
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    body += message.get("body", b"")
                    if len(body) > cap:
                        return BodyTooLarge(f"request body is over {cap} bytes")
                    if not message.get("more_body", False):
                        return bytes(body)
        except TimeoutError:
            return BodyTimeout(f"request body not received within {self.timeout_seconds:g} s")


def _body_length(scope: Scope) -> int | None:
    """0: no body; None: a body of unknown length (chunked); else its ``Content-Length``."""
    length = 0
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None  # the server's parser refuses it first; read bounded anyway
    return length


def _replay(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()  # waits for the disconnect, as the app expects
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
