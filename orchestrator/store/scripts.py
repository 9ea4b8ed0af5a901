"""The Lua scripts in ``lua/`` as typed handles, and their replies mapped to named exceptions.

:class:`Scripts` holds one :class:`Script` per file in ``lua/`` (``_lib.lua`` is prepended to
each), created once per client: ``await scripts.reserve(keys, args)``. A misspelled script is
an attribute that does not exist: mypy refuses it and ``getattr`` raises at once. The set of
handles must equal the set of files; :class:`Scripts` checks it when built.

Calls are auto-pipelined and never left waiting (see :mod:`orchestrator.store.script_batch`).
Scripts reply ``{code, ...}``; :func:`check` turns every non-OK code into an exception and
raises :class:`ScriptProtocolError` for anything it does not know.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import get_type_hints

from redis.asyncio import Redis

from orchestrator.errors import (
    CameraDisabled,
    CameraNotFound,
    InvalidInput,
    LimitBelowUsage,
    OrchestratorError,
    QuotaExceeded,
    ReservationNotFound,
    ScriptProtocolError,
)
from orchestrator.store.script_batch import Arg as Arg
from orchestrator.store.script_batch import Reply as Reply
from orchestrator.store.script_batch import ScriptBatcher

LIB = "_lib"


def lua_dir() -> Path:
    """Where the scripts live: ``CCTV_LUA_DIR``, the wheel's copy, or the repository's."""
    override = os.environ.get("CCTV_LUA_DIR")
    if override:
        return Path(override)
    packaged = Path(__file__).resolve().parent.parent / "lua"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "lua"


def script_files(directory: Path | None = None) -> frozenset[str]:
    """The scripts a directory holds: every ``*.lua`` but the shared ``_lib.lua``."""
    return frozenset(p.stem for p in (directory or lua_dir()).glob("*.lua") if p.stem != LIB)


def script_source(name: str, directory: Path | None = None) -> str:
    base = directory or lua_dir()
    lib = (base / f"{LIB}.lua").read_text(encoding="utf-8")
    return lib + (base / f"{name}.lua").read_text(encoding="utf-8")


class Script:
    """One script of one client: ``await script(keys, args)`` is its reply (a list)."""

    __slots__ = ("_batcher", "name")

    def __init__(self, name: str, batcher: ScriptBatcher) -> None:
        self.name = name
        self._batcher = batcher

    def __call__(self, keys: Sequence[str], args: Sequence[Arg] = ()) -> Awaitable[Reply]:
        return self._batcher.call(self.name, keys, args)

    def __repr__(self) -> str:
        return f"Script({self.name!r})"


class Scripts:
    """The scripts of one client, one attribute per file in ``lua/``."""

    codec_report: Script
    expire: Script
    heartbeat: Script
    ingress_bind: Script
    ingress_event: Script
    presence_sync: Script
    publisher_event: Script
    pusher_claim: Script
    pusher_failed: Script
    pusher_fence: Script
    pusher_placement: Script
    pusher_running: Script
    pusher_stop: Script
    pusher_stopped: Script
    recount: Script
    release: Script
    reserve: Script
    set_limit: Script
    stats_expired: Script
    stats_snapshot: Script
    viewer_event: Script

    def __init__(self, client: Redis, directory: Path | None = None) -> None:
        files = script_files(directory)
        if files != HANDLES:
            raise ScriptProtocolError(
                f"lua/ and Scripts disagree: no handle for {sorted(files - HANDLES)}, "
                f"no file for {sorted(HANDLES - files)}"
            )
        sources = {name: script_source(name, directory) for name in sorted(files)}
        self._batcher = ScriptBatcher(client, sources)
        for name in sources:
            setattr(self, name, Script(name, self._batcher))

    async def ready(self) -> bool:
        """Valkey answers and holds every script (loading any that are missing)."""
        return await self._batcher.ready()

    async def load_all(self) -> None:
        """Load every script now (readiness); calls also reload on NOSCRIPT by themselves."""
        await self._batcher.load_all()


HANDLES = frozenset(n for n, t in get_type_hints(Scripts).items() if t is Script)


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
