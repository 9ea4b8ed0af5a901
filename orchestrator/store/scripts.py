"""Loads the Lua scripts in ``lua/`` and maps their replies to named exceptions, in one place.

Each script is registered once per client (``redis.asyncio`` keeps its SHA and falls back to a
reload when the server answers NOSCRIPT, so a flushed script cache is survived). Scripts reply
``{code, ...}``; :func:`check` turns every non-OK code into an exception and raises
:class:`ScriptProtocolError` for anything it does not know.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

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
from orchestrator.store.errors import translated

NAMES = ("reserve", "heartbeat", "release", "expire", "recount", "set_limit")
LIB = "_lib"

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


class Scripts:
    """The registered scripts of one client. ``await scripts.run(name, keys, args)``."""

    def __init__(self, client: Redis, directory: Path | None = None) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(script_source(name, directory)) for name in NAMES
        }

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Reply:
        async with translated():
            reply = await self._scripts[name](keys=list(keys), args=list(args))
        if not isinstance(reply, list):
            raise ScriptProtocolError(f"{name} answered {reply!r}")
        return reply

    async def load_all(self) -> None:
        """Load every script now (readiness); ``run`` reloads on NOSCRIPT by itself."""
        async with translated():
            for script in self._scripts.values():
                script.sha = await self._client.script_load(script.script)


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
