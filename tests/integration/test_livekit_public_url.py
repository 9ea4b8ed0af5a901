"""Browsers get the public LiveKit URL; the service calls only the API URL.

A real ``serve`` process talks to the wire fake (the API URL, as a compose stack's internal
``http://livekit:7880`` would be); the public URL points at a second listener on loopback that
records anything it receives: nothing may reach it, while the Twirp calls reach the fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.harness.http import admit
from tests.harness.livekit import SYNC_S, NewStack, base_env
from tests.harness.waiting import eventually


@pytest.fixture
async def trap() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback listener standing in for the public URL; it records every request."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.Response(status=418)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"ws://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_reserve_hands_out_the_public_url_while_twirp_goes_to_the_api_url(
    new_stack: NewStack, trap: tuple[str, list[str]]
) -> None:
    public_url, seen = trap
    env = base_env(CCTV_LIVEKIT_PUBLIC_URL=public_url)
    async with new_stack(env, cameras=["cam-public"]) as s:
        body = await admit(s.http, "cam-public")
        assert body["livekit_url"] == public_url
        assert body["livekit_url"] != s.fake.url

        async def passes_ran() -> bool:  # the LiveKit pass lists rooms and ingresses
            calls = s.fake.twirp_calls
            return calls.count("livekit.RoomService/ListRooms") >= 2 and bool(
                calls.count("livekit.Ingress/ListIngress")
            )

        await eventually(passes_ran, 10 * SYNC_S + 10, "two LiveKit passes against the API URL")
        ready = await s.http.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text
    assert seen == [], f"the service called the public URL: {seen}"


async def test_without_a_public_url_browsers_get_the_api_url(new_stack: NewStack) -> None:
    async with new_stack(base_env(), cameras=["cam-default"]) as s:
        assert (await admit(s.http, "cam-default"))["livekit_url"] == s.fake.url
