"""`LiveKitGateway` against the wire-level `FakeLiveKit` over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import prometheus_client
import pytest
from aiohttp import web
from livekit import api
from prometheus_client import CollectorRegistry

from orchestrator.errors import LiveKitRejected, LiveKitUnavailable
from orchestrator.livekit.gateway import LiveKitGateway
from tests.fakes.livekit import FakeLiveKit
from tests.harness.constants import (
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    TEST_PUBLISHER,
    TEST_ROOM,
    WRONG_SECRET,
)
from tests.harness.livekit import viewer_token

TIMEOUT = 0.3
ATTEMPTS = 3


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def assert_secret_free(gateway: LiveKitGateway, exc: BaseException, *secrets: str) -> None:
    texts = [str(exc), repr(exc), gateway.last_error or ""]
    for text in texts:
        for secret in secrets:
            assert secret not in text
        assert "Bearer" not in text and "eyJ" not in text  # no JWT either


@pytest.fixture
async def fake() -> AsyncIterator[FakeLiveKit]:
    async with FakeLiveKit(LIVEKIT_KEY, LIVEKIT_SECRET) as lk:
        yield lk


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def gateway(fake: FakeLiveKit, registry: CollectorRegistry) -> AsyncIterator[LiveKitGateway]:
    gw = LiveKitGateway(
        fake.url,
        LIVEKIT_KEY,
        LIVEKIT_SECRET,
        timeout_seconds=TIMEOUT,
        attempts=ATTEMPTS,
        registry=registry,
    )
    await gw.start()
    yield gw
    await gw.close()


async def test_lifecycle_and_ping(fake: FakeLiveKit, registry: CollectorRegistry) -> None:
    gw = LiveKitGateway(
        fake.url, LIVEKIT_KEY, LIVEKIT_SECRET, timeout_seconds=TIMEOUT, registry=registry
    )
    with pytest.raises(LiveKitUnavailable, match="not started"):
        await gw.list_rooms()
    await gw.start()
    await gw.start()  # idempotent
    assert await gw.ping() is True
    assert fake.twirp_calls == ["livekit.RoomService/ListRooms"]
    assert fake.rooms() == {}  # the probe room is only listed, never created
    await gw.close()
    await gw.close()  # idempotent
    with pytest.raises(LiveKitUnavailable, match="not started"):
        await gw.ping()
    assert value(registry, "cctv_livekit_requests_total", operation="ping", outcome="ok") == 1
    unavailable = {"operation": "ping", "outcome": "unavailable"}
    assert value(registry, "cctv_livekit_requests_total", **unavailable) == 1
    assert (gw.healthy, gw.last_error) == (False, "livekit ping: gateway not started")
    with pytest.raises(ValueError, match="must all be set"):
        LiveKitGateway(fake.url, LIVEKIT_KEY, "")


async def test_ensure_room_is_idempotent_and_a_live_room_keeps_its_timeouts(
    fake: FakeLiveKit, gateway: LiveKitGateway, registry: CollectorRegistry
) -> None:
    room = await gateway.ensure_room(TEST_ROOM, empty_timeout=60, departure_timeout=10)
    assert room.name == TEST_ROOM and room.sid.startswith("RM_")
    assert (room.empty_timeout, room.departure_timeout) == (60, 10)
    again = await gateway.ensure_room(TEST_ROOM, empty_timeout=120, departure_timeout=15)
    assert again.sid == room.sid
    # LiveKit ignores the request's timeouts for a room that is live.
    assert (again.empty_timeout, again.departure_timeout) == (60, 10)
    assert fake.rooms()[TEST_ROOM].empty_timeout == 60
    await gateway.ensure_room("camera_8", empty_timeout=30, departure_timeout=5)
    assert sorted(r.name for r in await gateway.list_rooms()) == [TEST_ROOM, "camera_8"]

    ok = {"operation": "ensure_room", "outcome": "ok"}
    assert value(registry, "cctv_livekit_requests_total", **ok) == 3
    seconds = "cctv_livekit_request_seconds_count"
    assert value(registry, seconds, operation="ensure_room") == 3
    assert (gateway.healthy, gateway.last_error) == (True, None)
    # Only the registry passed in holds the metrics, never the process-global one.
    assert prometheus_client.REGISTRY.get_sample_value("cctv_livekit_requests_total", ok) is None
    LiveKitGateway(
        fake.url, LIVEKIT_KEY, LIVEKIT_SECRET
    )  # no registry: nothing registered, no clash


async def test_participants_list_and_remove(
    fake: FakeLiveKit, gateway: LiveKitGateway, registry: CollectorRegistry
) -> None:
    fake.join(viewer_token("viewer_r1"))
    fake.join(viewer_token("viewer_r2"))
    people = await gateway.list_participants(TEST_ROOM)
    assert sorted(p.identity for p in people) == ["viewer_r1", "viewer_r2"]
    assert await gateway.list_participants("no_such_room") == []

    assert await gateway.remove_participant(TEST_ROOM, "viewer_r1") is True
    assert [p.identity for p in await gateway.list_participants(TEST_ROOM)] == ["viewer_r2"]
    assert await gateway.remove_participant(TEST_ROOM, "viewer_r1") is False
    assert await gateway.remove_participant("no_such_room", "viewer_r2") is False

    labels = {"operation": "remove_participant"}
    requests = "cctv_livekit_requests_total"
    assert value(registry, requests, **labels, outcome="ok") == 1
    assert value(registry, requests, **labels, outcome="not_found") == 2
    assert value(registry, "cctv_livekit_errors_total", **labels, kind="rejected") == 0
    assert (gateway.healthy, gateway.last_error) == (True, None)


async def test_whip_ingress_create_get_list_delete(
    fake: FakeLiveKit, gateway: LiveKitGateway
) -> None:
    info = await gateway.create_whip_ingress(
        name=TEST_PUBLISHER, room_name=TEST_ROOM, identity=TEST_PUBLISHER
    )
    assert info.ingress_id.startswith("IN_") and info.stream_key
    assert info.input_type == api.IngressInput.WHIP_INPUT
    assert info.HasField("enable_transcoding") and info.enable_transcoding is False
    assert (info.name, info.room_name) == (TEST_PUBLISHER, TEST_ROOM)
    assert (info.participant_identity, info.participant_name) == (TEST_PUBLISHER, TEST_PUBLISHER)
    assert info.url == fake.whip_url
    other = await gateway.create_whip_ingress(name="cam8", room_name="camera_8", identity="cam8")

    got = await gateway.get_ingress(info.ingress_id)
    assert got is not None and got.stream_key == info.stream_key
    assert await gateway.get_ingress("IN_doesnotexist") is None
    assert await gateway.get_ingress("") is None  # ListIngress lists all for "": not one of them
    every = {i.ingress_id for i in await gateway.list_ingresses()}
    assert every == {info.ingress_id, other.ingress_id}
    assert [i.ingress_id for i in await gateway.list_ingresses(TEST_ROOM)] == [info.ingress_id]

    assert await gateway.delete_ingress(info.ingress_id) is True
    assert await gateway.delete_ingress(info.ingress_id) is False
    assert await gateway.get_ingress(info.ingress_id) is None
    assert set(fake.ingresses()) == {other.ingress_id}


async def test_invalid_request_is_rejected_once(
    fake: FakeLiveKit, gateway: LiveKitGateway, registry: CollectorRegistry
) -> None:
    with pytest.raises(LiveKitRejected) as err:
        await gateway.create_whip_ingress(name="x", room_name=TEST_ROOM, identity="")
    assert (err.value.twirp_code, err.value.status) == ("invalid_argument", 400)
    assert "no participant identity" in str(err.value)
    assert fake.twirp_calls == ["livekit.Ingress/CreateIngress"]  # no retry
    labels = {"operation": "create_whip_ingress"}
    assert value(registry, "cctv_livekit_errors_total", **labels, kind="rejected") == 1
    assert value(registry, "cctv_livekit_requests_total", **labels, outcome="rejected") == 1
    assert gateway.healthy is True and gateway.last_error == str(err.value)


async def test_wrong_secret_is_rejected_without_retry(
    fake: FakeLiveKit, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = LiveKitGateway(
        fake.url, LIVEKIT_KEY, WRONG_SECRET, timeout_seconds=TIMEOUT, registry=registry
    )
    await gw.start()
    try:
        with pytest.raises(LiveKitRejected) as err:
            await gw.list_rooms()
        with pytest.raises(LiveKitUnavailable) as ping_err:
            await gw.ping()  # readiness: an unusable LiveKit is not ready
    finally:
        await gw.close()
    assert (err.value.twirp_code, err.value.status) == ("unknown", 401)
    assert isinstance(ping_err.value.__cause__, LiveKitRejected)
    labels = {"operation": "list_rooms"}
    assert value(registry, "cctv_livekit_errors_total", **labels, kind="rejected") == 1
    assert value(registry, "cctv_livekit_requests_total", **labels, outcome="rejected") == 1
    assert fake.rooms() == {}
    for exc in (err.value, ping_err.value):
        assert_secret_free(gw, exc, WRONG_SECRET, LIVEKIT_SECRET)
    assert WRONG_SECRET not in caplog.text and "eyJ" not in caplog.text


async def test_stopped_server_is_unavailable_then_recovers(
    fake: FakeLiveKit, gateway: LiveKitGateway, registry: CollectorRegistry
) -> None:
    await fake.stop()
    with pytest.raises(LiveKitUnavailable) as err:
        await gateway.list_rooms()
    assert str(err.value) == "livekit list_rooms: connection"
    labels = {"operation": "list_rooms"}
    errors = "cctv_livekit_errors_total"
    assert value(registry, errors, **labels, kind="connection") == ATTEMPTS
    assert value(registry, "cctv_livekit_requests_total", **labels, outcome="unavailable") == 1
    assert (gateway.healthy, gateway.last_error) == (False, "livekit list_rooms: connection")
    assert_secret_free(gateway, err.value, LIVEKIT_SECRET)
    with pytest.raises(LiveKitUnavailable):
        await gateway.ping()
    assert value(registry, errors, operation="ping", kind="connection") == 1  # one attempt

    await fake.start()
    room = await gateway.ensure_room(TEST_ROOM, empty_timeout=60, departure_timeout=10)
    assert [r.sid for r in await gateway.list_rooms()] == [room.sid]
    assert await gateway.ping() is True
    assert (gateway.healthy, gateway.last_error) == (True, None)


async def test_hung_server_times_out_then_recovers(
    fake: FakeLiveKit, gateway: LiveKitGateway, registry: CollectorRegistry
) -> None:
    fake.hang()
    started = time.monotonic()
    bound = ATTEMPTS * TIMEOUT + 3
    call = gateway.ensure_room(TEST_ROOM, empty_timeout=60, departure_timeout=10)
    with pytest.raises(LiveKitUnavailable) as err:
        await asyncio.wait_for(call, bound)  # a regression fails here instead of hanging
    elapsed = time.monotonic() - started
    assert ATTEMPTS * TIMEOUT <= elapsed < bound
    assert str(err.value) == "livekit ensure_room: timeout"
    assert fake.hung_requests == ATTEMPTS  # every attempt reached the server and was abandoned
    labels = {"operation": "ensure_room"}
    assert value(registry, "cctv_livekit_errors_total", **labels, kind="timeout") == ATTEMPTS
    assert value(registry, "cctv_livekit_requests_total", **labels, outcome="unavailable") == 1
    assert gateway.healthy is False
    assert_secret_free(gateway, err.value, LIVEKIT_SECRET)

    # Cancelling a call (a caller's own deadline) cancels it at once and records no outcome.
    task = asyncio.create_task(gateway.list_rooms())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert value(registry, "cctv_livekit_request_seconds_count", operation="list_rooms") == 0

    fake.release()
    room = await gateway.ensure_room(TEST_ROOM, empty_timeout=60, departure_timeout=10)
    assert room.name == TEST_ROOM and gateway.healthy is True


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, list[int]]]:
    """A Twirp endpoint answering the scripted statuses in turn (200: an HTML page), then an
    empty protobuf 200."""
    statuses: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        if statuses and statuses[0] == 200:
            statuses.pop(0)
            return web.Response(text="<html>not livekit</html>", content_type="text/html")
        if statuses:
            status = statuses.pop(0)
            return web.json_response({"code": "scripted", "msg": f"status {status}"}, status=status)
        return web.Response(body=b"", content_type="application/protobuf")

    app = web.Application()
    app.router.add_post("/twirp/{path:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", statuses
    await runner.cleanup()


@pytest.fixture
async def scripted_gateway(
    scripted: tuple[str, list[int]], registry: CollectorRegistry
) -> AsyncIterator[tuple[LiveKitGateway, list[int]]]:
    """A gateway (3 attempts) in front of the scripted endpoint, and its status script."""
    url, statuses = scripted
    gw = LiveKitGateway(
        url, LIVEKIT_KEY, LIVEKIT_SECRET, timeout_seconds=TIMEOUT, registry=registry
    )
    await gw.start()
    yield gw, statuses
    await gw.close()


async def test_5xx_and_429_are_retried_but_501_and_a_bad_body_are_not(
    scripted_gateway: tuple[LiveKitGateway, list[int]], registry: CollectorRegistry
) -> None:
    gw, statuses = scripted_gateway
    statuses.extend([503, 429])
    assert await gw.list_rooms() == []  # third attempt succeeds
    statuses.extend([501, 500])
    with pytest.raises(LiveKitRejected) as err:
        await gw.list_rooms()
    assert statuses == [500]  # 501 was answered once and not retried
    statuses[:] = [200, 200]
    with pytest.raises(LiveKitRejected) as bad_body:
        await gw.list_rooms()  # the client raises protobuf's DecodeError; it must not leak
    assert (err.value.twirp_code, err.value.status) == ("scripted", 501)
    assert (bad_body.value.twirp_code, bad_body.value.status) == ("bad_response", 200)
    assert statuses == [200]  # the HTML 200 was not retried either
    errors = {
        kind: value(registry, "cctv_livekit_errors_total", operation="list_rooms", kind=kind)
        for kind in ("server_5xx", "rate_limited", "rejected")
    }
    assert errors == {"server_5xx": 1, "rate_limited": 1, "rejected": 2}


async def test_408_deadline_exceeded_is_retried_like_5xx(
    scripted_gateway: tuple[LiveKitGateway, list[int]], registry: CollectorRegistry
) -> None:
    """LiveKit's internal RPC timeout surfaces as Twirp 408 ``deadline_exceeded``."""
    gw, statuses = scripted_gateway
    statuses.extend([408, 408])
    assert await gw.list_rooms() == []  # third attempt succeeds
    assert statuses == []
    statuses.extend([408, 408, 408])
    with pytest.raises(LiveKitUnavailable):
        await gw.list_rooms()  # three attempts, all 408: temporary, not rejected
    assert statuses == []
    kind = "deadline_exceeded"
    assert value(registry, "cctv_livekit_errors_total", operation="list_rooms", kind=kind) == 5
    rejected = value(registry, "cctv_livekit_errors_total", operation="list_rooms", kind="rejected")
    assert rejected == 0


async def test_the_fakes_408_is_retried_and_its_503_too(
    fake: FakeLiveKit, gateway: LiveKitGateway, registry: CollectorRegistry
) -> None:
    """The same against the strict fake's fault knob: 408 twice, then the call goes through."""
    fake.fail_rpc("ListRooms", "deadline_exceeded", times=2)
    assert await gateway.list_rooms() == []
    fake.fail_rpc("ListRooms", "unavailable", times=1)
    assert await gateway.list_rooms() == []
    assert fake.twirp_calls.count("livekit.RoomService/ListRooms") == 5
    errors = {
        kind: value(registry, "cctv_livekit_errors_total", operation="list_rooms", kind=kind)
        for kind in ("deadline_exceeded", "server_5xx")
    }
    assert errors == {"deadline_exceeded": 2, "server_5xx": 1}
