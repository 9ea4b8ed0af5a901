"""Every Lua script loads into the real Valkey and documents its KEYS, ARGV and returns."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from orchestrator.store.scripts import NAMES, lua_dir, script_source


@pytest.mark.parametrize("name", NAMES)
async def test_script_loads_and_has_a_header(client: Redis, name: str) -> None:
    text = (lua_dir() / f"{name}.lua").read_text()
    assert "KEYS[1]" in text and "ARGV[1]" in text and "Returns" in text
    assert "redis.call('KEYS'" not in text and "'SCAN'" not in text
    assert not re.search(r"redis\.call\([^)]*\.\.", text), "a script builds a key name"
    sha = await client.script_load(script_source(name))
    assert (await client.script_exists(sha)) == [True]
