"""Script calls fail, never hang: a bad call fails at once and alone, the calls batched with it
get their own replies, and a Valkey that dies (or a sender that is cancelled) mid-batch fails
every call of the batch. Real Valkey; every await is bounded."""

from __future__ import annotations

import asyncio
import enum
import os
import signal
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from orchestrator.domain.models import Camera
from orchestrator.errors import InvalidInput, ScriptProtocolError, StoreUnavailable
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.embedded import EmbeddedValkey
from orchestrator.store.reservations import ReservationStore
from orchestrator.store.script_batch import ScriptBatcher
from orchestrator.store.scripts import Scripts

BOUND_SECONDS = 20.0
T = TypeVar("T")
RECOUNT_KEYS = [keys.source_leases("BUS"), keys.count("BUS")]


async def bounded(call: Awaitable[T]) -> T:
    """The call's result; the test fails (instead of hanging) after ``BOUND_SECONDS``."""
    try:
        return await asyncio.wait_for(call, BOUND_SECONDS)
    except TimeoutError:
        pytest.fail(f"a script call hung for {BOUND_SECONDS}s")


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every pipeline of script calls sent (NOSCRIPT re-sends included)."""
    sizes: list[int] = []
    send = ScriptBatcher._pipeline

    async def recording(self: ScriptBatcher, batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        return await send(self, batch)

    monkeypatch.setattr(ScriptBatcher, "_pipeline", recording)
    return sizes


class Level(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize(
    ("bad_keys", "bad_args", "field"),
    [
        (RECOUNT_KEYS, [None], "ARGV[1]"),
        (RECOUNT_KEYS, [True], "ARGV[1]"),
        (RECOUNT_KEYS, [0, {"a": 1}], "ARGV[2]"),
        (RECOUNT_KEYS, [0, [1]], "ARGV[2]"),
        (RECOUNT_KEYS, [0, object()], "ARGV[2]"),
        (RECOUNT_KEYS, [Level.ONE], "ARGV[1]"),  # redis-py would send "<Level.ONE: 1>"
        ([RECOUNT_KEYS[0], None], [0], "KEYS[2]"),
    ],
)
async def test_a_bad_argument_fails_at_once_and_alone(
    store: ReservationStore,
    scripts: Scripts,
    registry: CameraRegistry,
    batch_sizes: list[int],
    bad_keys: list[Any],
    bad_args: list[Any],
    field: str,
) -> None:
    for camera_id in ("cam-1", "cam-2"):
        await registry.put(Camera(camera_id, camera_id, f"rtsp://10.0.0.1/{camera_id}"))
    await bounded(scripts.ready())  # loaded: no NOSCRIPT re-send in the count
    results = await bounded(
        asyncio.gather(
            store.reserve("cam-1", "BUS", "alice"),
            scripts.recount(bad_keys, bad_args),
            store.reserve("cam-2", "METRO", "bob"),
            scripts.recount(RECOUNT_KEYS, [0]),
            return_exceptions=True,
        )
    )
    first, bad, second, recount = results
    assert isinstance(bad, InvalidInput) and bad.field == field, bad
    assert field in str(bad)
    assert not isinstance(first, BaseException) and first.camera_id == "cam-1"
    assert not isinstance(second, BaseException) and second.camera_id == "cam-2"
    assert recount == [1, 1]  # alice's lease was admitted in the same pipeline, before it
    assert batch_sizes == [3]  # the three good calls shared one pipeline; the bad one never joined


async def test_mypy_refuses_a_none_argument_and_runtime_refuses_it_before_sending(
    scripts: Scripts, batch_sizes: list[int]
) -> None:
    with pytest.raises(InvalidInput, match=r"recount: ARGV\[1\] is a NoneType"):
        await bounded(scripts.recount(RECOUNT_KEYS, [None]))  # type: ignore[list-item]
    assert batch_sizes == []


async def test_an_unknown_script_name_is_an_attribute_error_at_once(scripts: Scripts) -> None:
    # mypy strict (warn_unused_ignores) checks that this ignore is needed: it refuses the name.
    with pytest.raises(AttributeError, match="resreve"):
        _ = scripts.resreve  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="resreve"):
        getattr(scripts, "resreve")  # noqa: B009 - the runtime lookup of a misspelled name
    assert await bounded(scripts.recount(RECOUNT_KEYS, [0])) == [-1, 0]


async def test_a_script_error_fails_only_its_own_call(
    client: Redis, scripts: Scripts, batch_sizes: list[int]
) -> None:
    await client.set("a-string", "not a sorted set")
    await bounded(scripts.ready())
    results = await bounded(
        asyncio.gather(
            scripts.recount(RECOUNT_KEYS, [0]),
            scripts.recount(["a-string", keys.count("X")], [0]),  # WRONGTYPE inside the script
            scripts.recount(RECOUNT_KEYS, [0]),
            return_exceptions=True,
        )
    )
    assert results[0] == [-1, 0] and results[2] == [0, 0]  # in order, in one pipeline
    assert isinstance(results[1], ScriptProtocolError) and "WRONGTYPE" in str(results[1])
    assert batch_sizes == [3]


class BrokenPipeline:
    """A pipeline whose ``execute`` raises ``error`` as a whole."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __aenter__(self) -> BrokenPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def evalsha(self, *args: object) -> None:
        return None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (redis_errors.DataError("refused to encode"), StoreUnavailable),
        (redis_errors.InvalidResponse("garbled reply"), StoreUnavailable),
        (redis_errors.ConnectionError("reset"), StoreUnavailable),
        (redis_errors.ResponseError("refused"), ScriptProtocolError),
        (RuntimeError("a bug"), ScriptProtocolError),
    ],
)
async def test_a_pipeline_that_raises_fails_every_call_of_its_batch(
    client: Redis,
    scripts: Scripts,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    expected: type[Exception],
) -> None:
    monkeypatch.setattr(client, "pipeline", lambda **_: BrokenPipeline(error))
    calls = [scripts.recount(RECOUNT_KEYS, [0]) for _ in range(5)]
    results = await bounded(asyncio.gather(*calls, return_exceptions=True))
    assert all(isinstance(r, expected) for r in results), results
    assert all(isinstance(r, BaseException) and r.__cause__ is error for r in results)
    monkeypatch.undo()
    assert await bounded(scripts.recount(RECOUNT_KEYS, [0])) == [-1, 0]  # the next batch works


@dataclass
class OwnValkey:
    server: EmbeddedValkey
    client: Redis
    scripts: Scripts

    def signal(self, signum: signal.Signals) -> None:
        pid = int((self.server.data_dir / "valkey.pid").read_text().strip())
        os.kill(pid, signum)


@pytest.fixture
async def own_valkey(tmp_path: Path) -> AsyncIterator[OwnValkey]:
    """A Valkey of this test alone, to freeze and kill."""
    server = EmbeddedValkey(tmp_path / "valkey")
    server.start()
    client = connect(server.url, timeout_seconds=5.0)
    own = OwnValkey(server, client, Scripts(client))
    try:
        await own.scripts.ready()
        yield own
    finally:
        await client.aclose()
        server.stop()


async def test_a_valkey_that_dies_mid_batch_fails_the_batch(
    own_valkey: OwnValkey, batch_sizes: list[int]
) -> None:
    scripts = own_valkey.scripts
    own_valkey.signal(signal.SIGSTOP)  # the batch is written and waits for its replies
    calls = [asyncio.ensure_future(scripts.recount(RECOUNT_KEYS, [0])) for _ in range(300)]
    await asyncio.sleep(0.3)
    assert batch_sizes == [256] and not any(c.done() for c in calls)
    own_valkey.signal(signal.SIGKILL)
    results = await bounded(asyncio.gather(*calls, return_exceptions=True))
    assert all(isinstance(r, StoreUnavailable) for r in results), {type(r) for r in results}
    assert batch_sizes == [256, 44]  # the queued calls went next, and failed too
    with pytest.raises(StoreUnavailable):
        await bounded(scripts.recount(RECOUNT_KEYS, [0]))
    own_valkey.server.stop()  # reaps the killed process
    own_valkey.server.start()  # a new server: an empty script cache, so NOSCRIPT then reload
    assert await bounded(scripts.recount(RECOUNT_KEYS, [0])) == [-1, 0]


async def test_a_cancelled_sender_fails_its_calls(own_valkey: OwnValkey) -> None:
    scripts = own_valkey.scripts
    own_valkey.signal(signal.SIGSTOP)
    try:
        calls = [asyncio.ensure_future(scripts.recount(RECOUNT_KEYS, [0])) for _ in range(300)]
        await asyncio.sleep(0.3)
        (sender,) = [t for t in asyncio.all_tasks() if t.get_name() == "valkey-script-batches"]
        sender.cancel()
        results = await bounded(asyncio.gather(*calls, return_exceptions=True))
        assert all(isinstance(r, StoreUnavailable) for r in results), {type(r) for r in results}
        assert sender.cancelled()
    finally:
        own_valkey.signal(signal.SIGCONT)
    # A new sender. Valkey may have run the cancelled batch (it was written): never re-sent.
    assert await bounded(scripts.recount(RECOUNT_KEYS, [0])) in ([-1, 0], [0, 0])
