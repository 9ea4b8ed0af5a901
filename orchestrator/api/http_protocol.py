"""uvicorn's httptools protocol with the two bounds it lacks on request headers.

uvicorn times out only idle keep-alive connections: a connection that trickles its request
line and headers, or sends none, stays open for ever, and httptools buffers a header of any
size (a 200 MiB header line is held in memory whole). This subclass adds:

- a header timer, started when the connection is made and when a request begins, cancelled
  when its headers are complete; when it fires, the connection is closed (after a 408 when
  part of a request arrived);
- a header cap: once more than ``max_header_bytes`` arrived and the headers are still not
  complete, the answer is 431 and the connection closes. Arrivals are counted per read (at
  most 256 KiB), so the memory held is bounded by the cap plus one read.

If a previous (pipelined) request is still being answered, its answer is finished first and
the connection closes after it. Bodies are bounded by ``orchestrator.api.body_guard``.

Every close the server makes lingers (``orchestrator.api.lingering``): the client reads the
answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import json
import logging

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from orchestrator.api.lingering import LingeringTransport
from orchestrator.config import Settings

log = logging.getLogger(__name__)


class BoundedHeadersProtocol(HttpToolsProtocol):
    header_timeout_seconds = 10.0
    max_header_bytes = 32 * 1024
    _header_timer: asyncio.TimerHandle | None = None
    _awaiting_headers = True
    _header_bytes = 0

    _lingering: LingeringTransport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lingering = LingeringTransport(transport, self.loop)
        super().connection_made(self._lingering)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._lingering is not None:
            self._lingering.abort_lingering()
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._lingering is not None and self._lingering.lingering:
            self._lingering.abort_lingering()  # the client is done too
            return
        super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None and self._lingering.lingering:
            self._lingering.drain(data)
            return
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > self.max_header_bytes:
            self._cut_off(431, "HEADERS_TOO_LARGE", f"over {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True  # what arrives next is the next request's headers

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        seconds = f"{self.header_timeout_seconds:g} s"
        self._cut_off(408, "HEADER_TIMEOUT", f"not complete within {seconds}")

    def _cut_off(self, status: int, code: str, reason: str) -> None:
        self._disarm()
        self._awaiting_headers = False  # no second cut-off for the same connection
        if self.transport.is_closing():
            return
        log.info("request headers cut off", extra={"code": code, "client": self.client})
        if self.cycle is not None and not self.cycle.response_complete:
            self.flow.pause_reading()  # no further request is parsed
            self.cycle.keep_alive = False  # the answer in flight closes the connection
            return
        if self._header_bytes > 0:  # part of a request arrived: say why it ends
            body = json.dumps({"error": {"code": code, "message": f"request headers {reason}"}})
            head = f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            rest = f"{head}connection: close\r\n\r\n{body}"
            self.transport.write(STATUS_LINE[status] + rest.encode())
        self.transport.close()


def protocol_for(settings: Settings) -> type[BoundedHeadersProtocol]:
    """The protocol class for ``uvicorn.run(http=...)``, bound to the settings."""

    class Configured(BoundedHeadersProtocol):
        header_timeout_seconds = settings.http_header_timeout_seconds
        max_header_bytes = settings.http_max_header_bytes

    return Configured
