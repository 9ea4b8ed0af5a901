"""The Valkey client packs commands with hiredis (``orchestrator/store/client.py``): the bytes
on the wire are the ones redis-py's own asyncio packer writes, for every argument type the
service sends, and for the multi-word command names redis-py uses."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.typing import EncodableT

from orchestrator.store.client import _HiredisPacking, connect

CASES: list[tuple[EncodableT, ...]] = [
    ("EVALSHA", "a" * 40, 3, "stream:leases", "stream:limit:TOTAL", "k3", 0, "|", "state"),
    ("SET", "k", "é ü 日本", 1.5, 10, -3, 1e20, 0.1, b"\x00raw"),
    ("CONFIG GET", "maxmemory"),
    ("ZRANGE", "k", "(1795000000000", "+inf", "BYSCORE"),
    ("SET", "k", bytearray(b"ba"), memoryview(b"mv")),
]


@pytest.mark.parametrize("args", CASES, ids=[str(c[0]) for c in CASES])
def test_hiredis_writes_the_bytes_redis_py_writes(args: tuple[EncodableT, ...]) -> None:
    theirs = b"".join(bytes(part) for part in Connection().pack_command(*args))
    ours = b"".join(_HiredisPacking().pack_command(*args))
    assert ours == theirs


async def test_every_connection_of_the_pool_packs_with_hiredis() -> None:
    client = connect("redis://127.0.0.1:9")  # nothing is sent: only the classes are built
    try:
        assert issubclass(client.connection_pool.connection_class, _HiredisPacking)
        unix = connect("unix:///nonexistent.sock")
        assert issubclass(unix.connection_pool.connection_class, _HiredisPacking)
        assert "Unix" in unix.connection_pool.connection_class.__name__
        await unix.aclose()
    finally:
        await client.aclose()
