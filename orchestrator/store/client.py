"""Build the asyncio Valkey client with bounded timeouts."""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def connect(url: str, *, timeout_seconds: float = 0.5, max_connections: int = 64) -> Redis:
    """A pooled client. Every socket operation and every wait for a pooled connection is
    bounded, so no request hangs on Valkey.

    One quick retry rides over a dropped pooled connection (e.g. after a Valkey restart);
    anything longer is the caller's business (the API answers 503). A timeout is never
    retried: the command may have run, and not every script may run twice (a reserve whose
    reply was lost would be refused as a duplicate while its lease stays).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=max(timeout_seconds, 1.0),
        decode_responses=True,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        retry_on_error=[RedisConnectionError],
        health_check_interval=15,
    )
    pool.connection_class = _packed_by_hiredis(pool.connection_class)
    return Redis.from_pool(pool)


class _HiredisPacking:
    """Commands packed by hiredis, in C and in one pass. redis-py's asyncio packer joins its
    buffer again for every argument: a script call with thousands of keys (the stats
    snapshot's) cost milliseconds of event-loop time. The bytes are the same (str as UTF-8,
    int and float as redis-py writes them)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # 'CONFIG GET' and the like: one argument per word
            args = (*args[0].encode().split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a bytearray or memoryview (redis-py takes them): as bytes
            copied = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
            return [hiredis.pack_command(copied)]  # type: ignore[arg-type]  # its stub: 1-tuples


def _packed_by_hiredis(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` (TCP, TLS or Unix socket, as the URL chose) with :class:`_HiredisPacking`."""
    return type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
