"""Loads the Lua scripts in ``lua/`` and maps their replies to named exceptions, in one place.

Each script is loaded once per client and called by SHA; a NOSCRIPT answer (a flushed script
cache, a restarted server) reloads the scripts and re-sends the call. Scripts reply
``{code, ...}``; :func:`check` turns every non-OK code into an exception and raises
:class:`ScriptProtocolError` for anything it does not know.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from orchestrator.errors import (
    CameraDisabled,
    CameraNotFound,
    InvalidInput,
    LimitBelowUsage,
    OrchestratorError,
    QuotaExceeded,
    ReservationNotFound,
    ScriptProtocolError,
    StoreUnavailable,
)
from orchestrator.store.errors import translated

NAMES = (
    "reserve",
    "heartbeat",
    "release",
    "expire",
    "recount",
    "set_limit",
    "pusher_claim",
    "pusher_running",
    "pusher_failed",
    "pusher_stop",
    "pusher_stopped",
    "pusher_fence",
    "codec_report",
    "viewer_event",
    "publisher_event",
    "ingress_event",
    "ingress_bind",
    "presence_sync",
)
LIB = "_lib"
MAX_BATCH = 256

Reply = list[Any]


def lua_dir() -> Path:
    """Where the scripts live: ``CCTV_LUA_DIR``, the wheel's copy, or the repository's."""
    override = os.environ.get("CCTV_LUA_DIR")
    if override:
        return Path(override)
    packaged = Path(__file__).resolve().parent.parent / "lua"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "lua"


def script_source(name: str, directory: Path | None = None) -> str:
    base = directory or lua_dir()
    lib = (base / f"{LIB}.lua").read_text(encoding="utf-8")
    return lib + (base / f"{name}.lua").read_text(encoding="utf-8")


@dataclass(slots=True)
class _Call:
    name: str
    keys: list[str]
    args: list[Any]
    future: asyncio.Future[Any]


class Scripts:
    """The scripts of one client. ``await scripts.run(name, keys, args)``.

    Calls are auto-pipelined: every call made while a batch is being sent waits for the next
    batch, and each batch goes out as one pipeline of EVALSHAs (one write, one read). Each
    call still gets its own reply or error. A batch that meets NOSCRIPT (a flushed script
    cache, a restarted server) loads the scripts and re-sends the calls that failed.
    """

    def __init__(self, client: Redis, directory: Path | None = None) -> None:
        self._client = client
        self._source = {name: script_source(name, directory) for name in NAMES}
        # Valkey names scripts by their SHA1; it is an identifier here, not a security hash.
        self._sha = {name: _sha1(src) for name, src in self._source.items()}
        self._queue: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Reply:
        loop = asyncio.get_running_loop()
        call = _Call(name, list(keys), list(args), loop.create_future())
        self._queue.append(call)
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_all(), name="valkey-script-batches")
        reply = await call.future
        if not isinstance(reply, list):
            raise ScriptProtocolError(f"{name} answered {reply!r}")
        return reply

    async def _send_all(self) -> None:
        await asyncio.sleep(0)  # let callers of this loop tick join the first batch
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._send(batch)
            except OrchestratorError as exc:
                for call in batch:
                    if not call.future.done():
                        call.future.set_exception(exc)

    async def _send(self, batch: list[_Call]) -> None:
        replies = await self._pipeline(batch)
        missing = [c for c, r in zip(batch, replies, strict=True) if isinstance(r, NoScriptError)]
        if missing:
            await self.load_all()
            again = await self._pipeline(missing)
            replies = [
                again[missing.index(c)] if c in missing else r
                for c, r in zip(batch, replies, strict=True)
            ]
        for call, reply in zip(batch, replies, strict=True):
            if call.future.done():  # the caller gave up (cancelled)
                continue
            if isinstance(reply, redis_errors.ResponseError):
                call.future.set_exception(ScriptProtocolError(f"{call.name} failed: {reply}"))
            elif isinstance(reply, Exception):
                call.future.set_exception(StoreUnavailable(f"valkey: {type(reply).__name__}"))
            else:
                call.future.set_result(reply)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        async with translated(), self._client.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(self._sha[call.name], len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))

    async def ready(self) -> bool:
        """Valkey answers and holds every script (loading any that are missing)."""
        async with translated():
            present = await self._client.script_exists(*self._sha.values())
        if not all(present):
            await self.load_all()
        return True

    async def load_all(self) -> None:
        """Load every script now (readiness); ``run`` also reloads on NOSCRIPT by itself."""
        async with translated():
            for name, source in self._source.items():
                self._sha[name] = await self._client.script_load(source)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _quota(reply: Reply, context: dict[str, str]) -> OrchestratorError:
    return QuotaExceeded(
        source=context.get("source", ""),
        scope=str(reply[1]),
        current=int(reply[2]),
        limit=int(reply[3]),
    )


def _below(reply: Reply, context: dict[str, str]) -> OrchestratorError:
    return LimitBelowUsage(
        name=context.get("limit_name", ""), current=int(reply[1]), limit=int(reply[2])
    )


_ERRORS: dict[str, Callable[[Reply, dict[str, str]], OrchestratorError]] = {
    "LIMIT": _quota,
    "BELOW_USAGE": _below,
    "CAMERA_NOT_FOUND": lambda _r, c: CameraNotFound(f"camera {c.get('camera_id')} not found"),
    "CAMERA_DISABLED": lambda _r, c: CameraDisabled(f"camera {c.get('camera_id')} is disabled"),
    "NOT_FOUND": lambda _r, c: ReservationNotFound(
        f"reservation {c.get('reservation_id')} not found or expired"
    ),
    "INVALID": lambda r, _c: InvalidInput(f"invalid script argument: {r[1]}"),
    "EXISTS": lambda _r, _c: ScriptProtocolError("reservation id already exists"),
}


def check(script: str, reply: Reply, **context: str) -> Reply:
    """Return the values after ``'OK'``, or raise the exception the reply's code names."""
    code = reply[0] if reply else None
    if code == "OK":
        return reply[1:]
    factory = _ERRORS.get(str(code))
    if factory is None:
        raise ScriptProtocolError(f"{script} answered unknown code {code!r}")
    raise factory(reply, context)


def outcome(script: str, reply: Reply, *codes: str) -> tuple[str, Reply]:
    """For scripts with several normal answers (the pusher state machine): the code and its
    values when it is ``OK`` or one of ``codes``; otherwise the exception :func:`check` maps."""
    code = str(reply[0]) if reply else ""
    if code == "OK" or code in codes:
        return code, reply[1:]
    check(script, reply)
    raise ScriptProtocolError(f"{script} answered {code!r}")  # pragma: no cover - check raised
