"""The auto-pipelining sender behind the script handles of :mod:`orchestrator.store.scripts`.

Every call made while a batch is being sent waits for the next batch, and each batch goes out
as one pipeline of EVALSHAs (one write, one read); each call still gets its own reply or error.
A batch that meets NOSCRIPT (a flushed script cache, a restarted server) loads the scripts and
re-sends only the calls that failed so: Valkey ran none of them.

No call is left waiting:

- Keys and arguments are checked before a call joins a batch. One that redis-py would refuse
  (``None``, a bool, any type but str, bytes, int and float) fails that call alone, at once,
  with :class:`InvalidInput`; the calls it would have been batched with never see it.
- When a whole pipeline raises, every call of the batch fails: :class:`StoreUnavailable` for
  a lost or timed-out connection and any other redis error, :class:`ScriptProtocolError` for
  a refused command or anything unexpected (a bug). They are not re-sent one by one: Valkey
  may already have run some of them, and the scripts are not all idempotent (a claim bumps
  the generation, a failure counts an attempt). Only NOSCRIPT is re-sent.
- When the sender itself is cancelled (the loop shuts down), the batch in flight and the
  queued calls fail with :class:`StoreUnavailable` before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from orchestrator.errors import (
    InvalidInput,
    OrchestratorError,
    ScriptProtocolError,
    StoreUnavailable,
)
from orchestrator.store.errors import translated

MAX_BATCH = 256

Arg = str | bytes | int | float
Reply = list[Any]

_PLAIN_KEY = frozenset({str})
_PLAIN_ARG = frozenset({str, bytes, int, float})


def is_arg(value: object) -> bool:
    """What redis-py sends as given. Exact int and float: it refuses bools and writes an
    IntEnum as its repr."""
    return isinstance(value, str | bytes) or type(value) in (int, float)


def checked(
    script: str, keys: Sequence[object], args: Sequence[object]
) -> tuple[Sequence[str], Sequence[Arg]]:
    """The call's keys and arguments, or :class:`InvalidInput` naming the first bad one."""
    # The common case (exact types) is tested in C; the loops name the culprit, or let
    # subclasses of str and bytes (a StrEnum) through.
    if not (_PLAIN_KEY.issuperset(map(type, keys)) and _PLAIN_ARG.issuperset(map(type, args))):
        for i, key in enumerate(keys, 1):
            if not isinstance(key, str):
                raise _refused(script, f"KEYS[{i}]", key)
        for i, arg in enumerate(args, 1):
            if not is_arg(arg):
                raise _refused(script, f"ARGV[{i}]", arg)
    return cast(Sequence[str], keys), cast(Sequence[Arg], args)


def _refused(script: str, field: str, value: object) -> InvalidInput:
    kind = type(value).__name__
    return InvalidInput(f"{script}: {field} is a {kind}, not str, bytes, int or float", field=field)


@dataclass(slots=True)
class _Call:
    script: str
    keys: Sequence[str]
    args: Sequence[Arg]
    future: asyncio.Future[Any]


class ScriptBatcher:
    """Sends the script calls of one client; ``sources`` maps each script name to its text."""

    def __init__(self, client: Redis, sources: Mapping[str, str]) -> None:
        self._client = client
        self._source = dict(sources)
        # Valkey names scripts by their SHA1; it is an identifier here, not a security hash.
        self._sha = {name: _sha1(text) for name, text in self._source.items()}
        self._queue: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, script: str, keys: Sequence[object], args: Sequence[object]) -> Reply:
        checked_keys, checked_args = checked(script, keys, args)
        loop = asyncio.get_running_loop()
        call = _Call(script, checked_keys, checked_args, loop.create_future())
        self._queue.append(call)
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_all(), name="valkey-script-batches")
        reply = await call.future
        if not isinstance(reply, list):
            raise ScriptProtocolError(f"{script} answered {reply!r}")
        return reply

    async def _send_all(self) -> None:
        await asyncio.sleep(0)  # let callers of this loop tick join the first batch
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._send(batch)
            except OrchestratorError as exc:  # translated: StoreUnavailable, ScriptProtocolError
                _fail(batch, exc)
            except redis_errors.RedisError as exc:
                _fail(batch, _chained(StoreUnavailable, "valkey failed a script batch", exc))
            except Exception as exc:  # noqa: BLE001 - handed to every call of the batch
                _fail(batch, _chained(ScriptProtocolError, "a script batch failed", exc))
            except BaseException:  # CancelledError (or an interpreter exit): fail, then go on
                pending, self._queue = batch + self._queue, []
                _fail(pending, StoreUnavailable("valkey script sender stopped before answering"))
                raise

    async def _send(self, batch: list[_Call]) -> None:
        replies = await self._pipeline(batch)
        missing = [c for c, r in zip(batch, replies, strict=True) if isinstance(r, NoScriptError)]
        if missing:
            await self.load_all()
            again = dict(zip(map(id, missing), await self._pipeline(missing), strict=True))
            replies = [again.get(id(c), r) for c, r in zip(batch, replies, strict=True)]
        for call, reply in zip(batch, replies, strict=True):
            if call.future.done():  # the caller gave up (cancelled)
                continue
            if isinstance(reply, redis_errors.ResponseError):
                call.future.set_exception(ScriptProtocolError(f"{call.script} failed: {reply}"))
            elif isinstance(reply, Exception):
                call.future.set_exception(StoreUnavailable(f"valkey: {type(reply).__name__}"))
            else:
                call.future.set_result(reply)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        async with translated(), self._client.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(self._sha[call.script], len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))

    async def ready(self) -> bool:
        """Valkey answers and holds every script (loading any that are missing)."""
        async with translated():
            present = await self._client.script_exists(*self._sha.values())
        if not all(present):
            await self.load_all()
        return True

    async def load_all(self) -> None:
        """Load every script now; calls also reload by themselves on NOSCRIPT."""
        async with translated():
            for name, source in self._source.items():
                self._sha[name] = await self._client.script_load(source)


def _fail(calls: list[_Call], error: BaseException) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(error)


def _chained(kind: type[OrchestratorError], what: str, exc: BaseException) -> OrchestratorError:
    error = kind(f"{what}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
