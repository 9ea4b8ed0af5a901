"""Which cameras' keys changed, told by Valkey itself: server-assisted client-side caching
(``CLIENT TRACKING ON BCAST``) on one connection of its own.

Valkey pushes an ``invalidate`` message to this connection for every write to a key under
one of the watched prefixes, whoever writes it (any replica, any script, an operator), and for
every key that expires or is evicted; a ``FLUSHALL`` pushes "everything". No writer has to
remember to bump a counter, so no write can be missed.

:meth:`ChangedKeys.take` answers the ids changed since the last take, and it includes every
write acknowledged before the call: it sends ``PING`` on the tracking connection and waits for
the ``PONG``. Valkey queues a write's invalidation before it replies to the writer, so it
arrives ahead of that ``PONG``; a caller reads its own writes.

When the answer is not known, :meth:`ChangedKeys.take` says so with ``None`` and the caller
reads everything: the first take after a (re)connect (writes made while nobody listened are
lost), after a flush, and whenever the connection fails or a ``PONG`` is late. A failed
connection is retried on the next take, no sooner than its backoff allows (0.5 s doubling
to 30 s); meanwhile every take answers ``None``.

A reader task drains the pushes as they come, so Valkey never buffers them for this client
however long nobody takes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


class ChangedKeys:
    """The ids whose keys changed, a key ``<prefix><id>`` naming ``<id>`` for each of
    ``prefixes`` (the first prefix that matches; they should not overlap)."""

    def __init__(
        self,
        client: Redis,
        prefixes: Sequence[str],
        *,
        timeout_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not prefixes or any(not p for p in prefixes):
            raise ValueError("ChangedKeys needs non-empty prefixes")
        self._client = client
        self.prefixes = tuple(prefixes)
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._conn: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pongs: collections.deque[asyncio.Future[None]] = collections.deque()
        self._changed: set[str] = set()
        self._unknown = True  # what changed is not known: the next take answers None
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self.connects = 0  # tracking connections opened (a metric of reconnects for tests)

    @property
    def up(self) -> bool:
        """The tracking connection is open and read (takes can say what changed)."""
        return self._conn is not None and self._reader is not None and not self._reader.done()

    async def take(self) -> set[str] | None:
        """The ids changed since the last take, every write acknowledged before this call
        included; ``None`` when that is not known (read everything)."""
        async with self._lock:
            conn = await self._connected()
            if conn is None:
                return None
            pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pongs.append(pong)
            try:
                await asyncio.wait_for(self._ping(conn, pong), self._timeout)
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("key tracking lost", extra={"error": type(exc).__name__})
                await self._drop()
                return None
            changed, self._changed = self._changed, set()
            if self._unknown:
                self._unknown = False
                return None
            return changed

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()

    async def _ping(self, conn: AbstractConnection, pong: asyncio.Future[None]) -> None:
        if not conn.is_connected:  # sending would open a new socket, one not tracking
            raise RedisError("key tracking connection closed")
        await conn.send_command("PING")
        await asyncio.shield(pong)  # a timeout drops the connection, which fails the pong

    async def _connected(self) -> AbstractConnection | None:
        if self.up:
            return self._conn
        await self._drop()
        if self._clock() < self._retry_at:
            return None
        try:
            conn = await asyncio.wait_for(self._open(), self._timeout)
        except (TimeoutError, RedisError, OSError) as exc:
            self._backoff_s = min(max(self._backoff_s * 2, BACKOFF_FIRST_S), BACKOFF_MAX_S)
            self._retry_at = self._clock() + self._backoff_s
            log.warning(
                "key tracking unavailable",
                extra={"error": type(exc).__name__, "retry_in_s": self._backoff_s},
            )
            return None
        self._backoff_s = 0.0
        self._conn = conn
        self._reader = asyncio.create_task(self._read(conn), name="changed-keys")
        self._unknown = True  # what changed before tracking began is not known
        self.connects += 1
        return conn

    async def _open(self) -> AbstractConnection:
        pool = self._client.connection_pool
        kwargs: dict[str, Any] = {
            **pool.connection_kwargs,
            "protocol": 3,  # invalidations come as pushes on this very connection
            "decode_responses": True,
            "socket_timeout": None,  # it waits for pushes; a late PONG bounds it instead
            # Never behind this object's back: no health-check PING (the reader task owns the
            # replies) and no silent reconnect (a new socket would not be tracking).
            "health_check_interval": 0,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_error": [],
        }
        conn: AbstractConnection = pool.connection_class(**kwargs)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            parser: Any = conn._parser
            parser.set_invalidation_push_handler(self._invalidated)  # a RESP3 parser's
            prefixes = [word for p in self.prefixes for word in ("PREFIX", p)]
            await conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", *prefixes)
            reply = await conn.read_response()
            if reply not in ("OK", b"OK"):
                raise RedisError(f"CLIENT TRACKING answered {reply!r}")
        except BaseException:
            await conn.disconnect()
            raise
        return conn

    async def _read(self, conn: AbstractConnection) -> None:
        """Reads the connection until it fails: pushes go to :meth:`_invalidated`; every
        ``PONG`` answers the oldest ping. One push at a time (``push_request``): redis-py
        would otherwise handle a run of pushes by recursion, one frame per push, until a
        reply came."""
        try:
            while True:
                reply = await conn.read_response(push_request=True)
                if reply == "PONG" and self._pongs:
                    pong = self._pongs.popleft()
                    if not pong.done():
                        pong.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - tracking only saves reads: fall back to all
            log.warning("key tracking connection failed", extra={"error": type(exc).__name__})
        finally:
            self._unknown = True
            self._fail_pongs()

    async def _invalidated(self, message: list[Any]) -> None:
        changed = message[1] if len(message) > 1 else None
        if changed is None:  # a flush: everything may have changed
            self._unknown = True
            return
        for key in changed:
            name = key.decode() if isinstance(key, bytes) else str(key)
            for prefix in self.prefixes:
                if name.startswith(prefix):
                    self._changed.add(name[len(prefix) :])
                    break

    def _fail_pongs(self) -> None:
        while self._pongs:
            pong = self._pongs.popleft()
            if not pong.done():
                pong.set_exception(RedisError("key tracking connection closed"))
                pong.exception()  # retrieved: the waiter may have timed out already

    async def _drop(self) -> None:
        reader, conn = self._reader, self._conn
        self._reader = self._conn = None
        self._unknown = True
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # logged by the reader
                await reader
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await conn.disconnect()
        self._fail_pongs()
