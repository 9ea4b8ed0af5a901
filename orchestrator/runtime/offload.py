"""SDK calls off the event loop: a thread pool of the adapter's own, errors translated.

Each Docker-API adapter runs its blocking SDK calls here, so fifty teardowns at once do not
queue behind the loop's small default pool, and every docker, requests or OS error becomes
``RuntimeUnavailable``, ``RuntimeRejected`` (``sync_engine.translate``) before it leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from orchestrator.runtime.sync_engine import SDK_ERRORS, translate

T = TypeVar("T")


class Offload:
    def __init__(self, workers: int, runtime: str) -> None:
        self._runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=runtime)

    async def __call__(self, op: str, fn: Callable[[], T], secrets: Iterable[str] = ()) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except SDK_ERRORS as exc:
            raise translate(op, exc, secrets, self._runtime) from exc

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
