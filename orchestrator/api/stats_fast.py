"""The dashboards' poll, ``GET /api/v1/stream/stats`` with no query, answered straight from
the shared snapshot: a plain ASGI middleware, innermost, that skips routing, dependency
injection and the response classes. Those cost the poll more than the snapshot does: at a few
thousand polls a second they were half of a replica's time.

It answers with :func:`~orchestrator.api.stats_body.stats_reply`, as the route does, and a
failed read with the app's own handler of :class:`~orchestrator.errors.OrchestratorError`
(the contract's error body and ``Retry-After``: a 503 while Valkey is away); it sets the route
on the scope (the request metric's label). Everything else goes on to the app, and so does
this request while the services are not up. ``tests/integration/test_stats_snapshot.py``
checks both paths give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.stats_body import StatsBodies, stats_reply
from orchestrator.errors import OrchestratorError

PATH = "/api/v1/stream/stats"


@dataclass(frozen=True, slots=True)
class _Route:
    """What the request metric reads of a matched route: its template."""

    path: str


ROUTE = _Route(PATH)


class StatsFastPath:
    def __init__(self, app: ASGIApp, owner: Callable[[], Any]) -> None:
        self.app = app
        self._owner = owner  # the FastAPI app: its state (services, once the lifespan ran)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "GET"
            or scope["query_string"]
        ):
            await self.app(scope, receive, send)
            return
        owner = self._owner()
        state = owner.state
        services = getattr(state, "services", None)
        bodies: StatsBodies | None = getattr(state, "stats_bodies", None)
        if services is None or bodies is None:
            await self.app(scope, receive, send)
            return
        if_none_match = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        scope["route"] = ROUTE
        try:
            reply = await stats_reply(services.stats, bodies, if_none_match)
        except OrchestratorError as exc:  # answered as the route's would be
            handler = owner.exception_handlers[OrchestratorError]
            response: Response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        headers = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.status == 200:
            headers += [
                (b"content-length", str(len(reply.content)).encode()),
                (b"content-type", b"application/json"),
            ]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.content})
