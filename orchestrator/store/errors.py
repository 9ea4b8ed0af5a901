"""Translate redis-py errors at the edge: nothing from ``redis`` leaks past the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis import exceptions as redis_errors

from orchestrator.errors import ScriptProtocolError, StoreUnavailable


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise StoreUnavailable(f"valkey unavailable: {type(exc).__name__}") from exc
    except redis_errors.ResponseError as exc:
        raise ScriptProtocolError(f"valkey refused a command: {exc}") from exc
