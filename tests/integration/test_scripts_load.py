"""Every Lua script loads into the real Valkey and documents its KEYS, ARGV and returns; the
handles of ``Scripts`` are exactly the files of ``lua/``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from redis.asyncio import Redis

from orchestrator.errors import ScriptProtocolError
from orchestrator.store.scripts import (
    HANDLES,
    Script,
    Scripts,
    lua_dir,
    script_files,
    script_source,
)


@pytest.mark.parametrize("name", sorted(script_files()))
async def test_script_loads_and_has_a_header(client: Redis, name: str) -> None:
    text = (lua_dir() / f"{name}.lua").read_text()
    assert "KEYS[1]" in text and "ARGV[1]" in text and "Returns" in text
    assert "redis.call('KEYS'" not in text and "'SCAN'" not in text
    assert not re.search(r"redis\.call\([^)]*\.\.", text), "a script builds a key name"
    sha = await client.script_load(script_source(name))
    assert (await client.script_exists(sha)) == [True]


def test_the_handles_are_the_files_of_lua(client: Redis) -> None:
    files = {p.stem for p in lua_dir().glob("*.lua")} - {"_lib"}
    assert len(files) >= 18
    assert set(HANDLES) == files == script_files()
    scripts = Scripts(client)
    for name in files:
        handle = getattr(scripts, name)
        assert isinstance(handle, Script) and handle.name == name


async def test_all_scripts_load_and_are_ready(client: Redis) -> None:
    scripts = Scripts(client)
    await client.script_flush()
    assert await scripts.ready()
    shas = [await client.script_load(script_source(name)) for name in sorted(HANDLES)]
    assert await client.script_exists(*shas) == [True] * len(shas)


@pytest.mark.parametrize("change", ["extra", "missing"])
def test_a_lua_folder_that_differs_from_the_handles_is_refused(
    client: Redis, tmp_path: Path, change: str
) -> None:
    folder = tmp_path / "lua"
    shutil.copytree(lua_dir(), folder)
    if change == "extra":
        (folder / "unheard_of.lua").write_text("return {'OK'}\n")
    else:
        (folder / "recount.lua").unlink()
    with pytest.raises(ScriptProtocolError, match="unheard_of" if change == "extra" else "recount"):
        Scripts(client, folder)
