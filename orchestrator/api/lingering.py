"""A lingering close for connections the service ends while the client is still sending.

Closing a TCP socket with unread bytes in its receive buffer makes the kernel send a reset
instead of a FIN, and a reset may overtake the answer just written: the client of a 413,
408 or 431 then sees "connection reset by peer" instead of the reason. The usual cure (as
in nginx's ``lingering_close``) is to half-close (send the answer and a FIN), then read and
discard what the client still sends for a bounded time and amount, then close.

``LingeringTransport`` wraps the asyncio transport handed to the HTTP protocol, so every
close (uvicorn's after a ``Connection: close`` answer and the protocol's own cut-offs)
lingers. The protocol forwards arrivals to ``drain`` while it lingers.
"""

from __future__ import annotations

import asyncio
from typing import Any

LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 256 * 1024


class LingeringTransport:
    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._drained = 0
        self.lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        """Send what is buffered and a FIN, then drain until the client closes, the time
        runs out or too much arrives. Without a half-close (TLS), close at once."""
        if self.is_closing():
            return
        if not self._transport.can_write_eof():
            self._transport.close()
            return
        self.lingering = True
        self._transport.write_eof()
        self._transport.resume_reading()  # a paused reader would leave bytes unread
        self._timer = self._loop.call_later(LINGER_SECONDS, self.abort_lingering)

    def drain(self, data: bytes) -> None:
        """Discard bytes that arrive while lingering."""
        self._drained += len(data)
        if self._drained > LINGER_MAX_BYTES:
            self.abort_lingering()

    def abort_lingering(self) -> None:
        """End the linger now (the client closed, time ran out, or the connection is lost)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._transport.is_closing():
            self._transport.close()
