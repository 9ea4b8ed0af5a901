"""Build the asyncio Valkey client with bounded timeouts."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
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
    return Redis.from_pool(pool)
