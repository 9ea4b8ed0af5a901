"""HTTP request duration by route template: a plain ASGI middleware (no per-request objects).

The label is the matched route's template (``/api/v1/stream/heartbeat/{reservation_id}``),
never the raw path, so ids never become label values; unmatched paths share ``unmatched``.

A request that ends without a response because its client went away (``http.disconnect``,
e.g. a hang-up mid-body) is counted as 499, nginx's "client closed request", never as a 5xx.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.metrics import ServiceMetrics

UNMATCHED = "unmatched"
CLIENT_GONE = 499
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestTiming:
    def __init__(self, app: ASGIApp, metrics: Callable[[], ServiceMetrics | None]) -> None:
        self.app = app
        self._metrics = metrics  # the services exist only once the lifespan has run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        gone = False

        async def watched_receive() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, watched_receive, timed_send)
        finally:
            if status is None:  # no response: the client left, or the server answers 500
                status = CLIENT_GONE if gone else 500
            metrics = self._metrics()
            if metrics is not None:
                route = getattr(scope.get("route"), "path", UNMATCHED)
                method = scope["method"] if scope["method"] in METHODS else "other"
                metrics.request(method, route, status, time.perf_counter() - started)
