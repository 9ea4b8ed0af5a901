"""The LiveKit wire fake, driven only through the real `livekit-api` client and real HTTP.

The later tests pin where the fake is as strict as the real server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import web
from livekit import api
from yarl import URL

from tests.fakes.livekit import FakeLiveKit, JoinRejected, WebhookPolicy
from tests.harness.constants import (
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    TEST_PUBLISHER,
    TEST_ROOM,
    WRONG_SECRET,
)
from tests.harness.livekit import viewer_token

TIMEOUT = aiohttp.ClientTimeout(total=2)
FAST = WebhookPolicy(attempts=3, backoff_seconds=0.01)

Kind = api.ParticipantInfo.Kind
Status = api.IngressState.Status
T = TypeVar("T")


async def call(aw: Awaitable[T]) -> T:
    """The client ignores its own timeout for RPCs."""
    return await asyncio.wait_for(aw, 2)


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 that verifies every delivery it accepts."""

    script: list[int] = field(default_factory=list)  # statuses to answer first, then 200
    events: list[api.WebhookEvent] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        auth = request.headers.get("Authorization", "")
        self.authorizations.append(auth)
        self.content_types.append(request.headers.get("Content-Type", ""))
        if self.script:
            return web.Response(status=self.script.pop(0))
        verifier = api.WebhookReceiver(api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET))
        self.events.append(verifier.receive(body, auth))
        return web.Response(status=200)

    @property
    def names(self) -> list[str]:
        return [e.event for e in self.events]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def lk(receiver: Receiver) -> AsyncIterator[FakeLiveKit]:
    async with FakeLiveKit(
        LIVEKIT_KEY, LIVEKIT_SECRET, webhook_url=receiver.url, webhook_policy=FAST
    ) as fake:
        yield fake


@pytest.fixture
async def lkapi(lk: FakeLiveKit) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(lk.url, LIVEKIT_KEY, LIVEKIT_SECRET, timeout=TIMEOUT)
    yield client
    await client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


async def create_whip_ingress(lkapi: api.LiveKitAPI) -> api.IngressInfo:
    request = api.CreateIngressRequest(
        input_type=api.IngressInput.WHIP_INPUT,
        name=TEST_PUBLISHER,
        room_name=TEST_ROOM,
        participant_identity=TEST_PUBLISHER,
        participant_name="Camera 7",
    )
    return await call(lkapi.ingress.create_ingress(request))


async def whip_publish(http: aiohttp.ClientSession, info: api.IngressInfo) -> str:
    headers = {"Authorization": f"Bearer {info.stream_key}", "Content-Type": "application/sdp"}
    async with http.post(
        info.url, data="v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", headers=headers
    ) as r:
        assert r.status == 201, await r.text()
        assert r.content_type == "application/sdp"
        assert (await r.text()).startswith("v=0")
        assert r.headers["ETag"]
        location = r.headers["Location"]
    assert location.startswith(f"/w/{info.stream_key}/WH_")
    return str(URL(info.url).join(URL(location)))


async def test_rooms_create_list_delete(lkapi: api.LiveKitAPI) -> None:
    room = await call(
        lkapi.room.create_room(api.CreateRoomRequest(name=TEST_ROOM, empty_timeout=60))
    )
    assert room.sid.startswith("RM_") and len(room.sid) == 15
    assert (room.empty_timeout, room.departure_timeout) == (60, 20)
    again = await call(lkapi.room.create_room(api.CreateRoomRequest(name=TEST_ROOM)))
    assert again.sid == room.sid  # get-or-create
    await call(lkapi.room.create_room(api.CreateRoomRequest(name="camera_8")))

    listed = await call(lkapi.room.list_rooms(api.ListRoomsRequest()))
    assert sorted(r.name for r in listed.rooms) == [TEST_ROOM, "camera_8"]
    some = await call(lkapi.room.list_rooms(api.ListRoomsRequest(names=[TEST_ROOM, "nope"])))
    assert [r.name for r in some.rooms] == [TEST_ROOM]

    await call(lkapi.room.delete_room(api.DeleteRoomRequest(room=TEST_ROOM)))
    with pytest.raises(api.TwirpError) as err:
        await call(lkapi.room.delete_room(api.DeleteRoomRequest(room=TEST_ROOM)))
    assert (err.value.code, err.value.status) == ("not_found", 404)
    assert err.value.message == "requested room does not exist"


async def test_participants_list_get_remove(lk: FakeLiveKit, lkapi: api.LiveKitAPI) -> None:
    joined = lk.join(viewer_token("viewer_r1"))
    lk.join(viewer_token("viewer_r2"))
    assert joined.sid.startswith("PA_") and joined.kind == Kind.STANDARD

    listed = await call(lkapi.room.list_participants(api.ListParticipantsRequest(room=TEST_ROOM)))
    assert sorted(p.identity for p in listed.participants) == ["viewer_r1", "viewer_r2"]
    got = await call(
        lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=TEST_ROOM, identity="viewer_r1")
        )
    )
    assert got.sid == joined.sid and got.state == api.ParticipantInfo.State.ACTIVE
    assert got.permission.can_subscribe and not got.permission.can_publish

    target = api.RoomParticipantIdentity(room=TEST_ROOM, identity="viewer_r1")
    await call(lkapi.room.remove_participant(target))
    for attempt in (lkapi.room.get_participant, lkapi.room.remove_participant):
        with pytest.raises(api.TwirpError) as err:
            await call(attempt(target))
        assert (err.value.code, err.value.status) == ("not_found", 404)
    assert lk.events[-1].participant.disconnect_reason == api.DisconnectReason.PARTICIPANT_REMOVED

    empty = await call(lkapi.room.list_participants(api.ListParticipantsRequest(room="nope")))
    assert list(empty.participants) == []

    lk.leave(TEST_ROOM, "viewer_r2")
    assert lk.participants(TEST_ROOM) == []
    with pytest.raises(JoinRejected):
        lk.join(viewer_token("viewer_r3", secret=WRONG_SECRET))


async def test_jwt_checks(lk: FakeLiveKit, http: aiohttp.ClientSession) -> None:
    wrong = api.LiveKitAPI(lk.url, LIVEKIT_KEY, WRONG_SECRET, timeout=TIMEOUT)
    viewer = api.LiveKitAPI.with_token(viewer_token("viewer_r1"), lk.url, timeout=TIMEOUT)
    expired_token = (
        api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET)
        .with_ttl(timedelta(minutes=-5))
        .with_grants(api.VideoGrants(room_list=True))
        .to_jwt()
    )
    expired = api.LiveKitAPI.with_token(expired_token, lk.url, timeout=TIMEOUT)
    other_room = api.LiveKitAPI.with_token(
        api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET)
        .with_grants(api.VideoGrants(room_admin=True, room="camera_8"))
        .to_jwt(),
        lk.url,
        timeout=TIMEOUT,
    )
    try:
        # Signature or expiry failures: 401 text/plain from the middleware -> code "unknown".
        for client in (wrong, expired):
            with pytest.raises(api.TwirpError) as err:
                await call(client.room.list_rooms(api.ListRoomsRequest()))
            assert (err.value.code, err.value.status) == ("unknown", 401)
        # Valid tokens without the grant: 401 JSON unauthenticated "permissions denied".
        denied = [
            viewer.room.list_rooms(api.ListRoomsRequest()),
            viewer.ingress.list_ingress(api.ListIngressRequest()),
            other_room.room.list_participants(api.ListParticipantsRequest(room=TEST_ROOM)),
        ]
        for attempt in denied:
            with pytest.raises(api.TwirpError) as err:
                await call(attempt)
            assert (err.value.code, err.value.status) == ("unauthenticated", 401)
            assert err.value.message == "permissions denied"
    finally:
        for client in (wrong, viewer, expired, other_room):
            await client.aclose()

    url = lk.url + "/twirp/livekit.RoomService/ListRooms"
    proto = {"Content-Type": "application/protobuf"}
    async with http.post(url, headers={**proto, "Authorization": "Token x"}) as r:
        assert (r.status, r.content_type) == (401, "text/plain")
        assert await r.text() == "invalid authorization header. Must start with Bearer "
    async with http.post(url, headers=proto) as r:
        assert r.status == 401
        assert await r.json() == {"code": "unauthenticated", "msg": "permissions denied"}


async def test_twirp_routing_and_json(lk: FakeLiveKit, http: aiohttp.ClientSession) -> None:
    token = (
        api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET)
        .with_grants(api.VideoGrants(room_create=True))
        .to_jwt()
    )
    auth = {"Authorization": f"Bearer {token}"}
    base = lk.url + "/twirp/livekit.RoomService/"
    async with http.get(base + "CreateRoom", headers=auth) as r:
        assert r.status == 404
        assert (await r.json())["code"] == "bad_route"
    async with http.post(base + "Nope", headers=auth, data=b"") as r:
        body = await r.json()
        assert body["meta"] == {"twirp_invalid_route": "POST /twirp/livekit.RoomService/Nope"}
    async with http.post(base + "CreateRoom", headers={**auth, "Content-Type": "text/plain"}) as r:
        assert (r.status, (await r.json())["msg"]) == (404, 'unexpected Content-Type: "text/plain"')
    bad = {**auth, "Content-Type": "application/protobuf"}
    async with http.post(base + "CreateRoom", headers=bad, data=b"\xff\xff") as r:
        assert (r.status, (await r.json())["code"]) == (400, "malformed")
    async with http.post(base + "CreateRoom", headers=auth, json={"name": TEST_ROOM}) as r:
        assert (r.status, r.content_type) == (200, "application/json")
        room = await r.json()
        assert room["name"] == TEST_ROOM and room["empty_timeout"] == 300
        assert room["num_participants"] == 0  # defaults emitted, proto field names


async def test_duplicate_identity_evicts_older_session(lk: FakeLiveKit, receiver: Receiver) -> None:
    first = lk.join(viewer_token("viewer_r1"))
    second = lk.join(viewer_token("viewer_r1"))
    assert second.sid != first.sid
    assert [p.sid for p in lk.participants(TEST_ROOM)] == [second.sid]

    await lk.drain_webhooks()
    assert receiver.names == [
        "room_started",
        "participant_joined",
        "participant_left",
        "participant_joined",
    ]
    left, rejoined = receiver.events[2], receiver.events[3]
    assert left.participant.sid == first.sid
    assert left.participant.disconnect_reason == api.DisconnectReason.DUPLICATE_IDENTITY
    assert left.participant.state == api.ParticipantInfo.State.DISCONNECTED
    assert rejoined.participant.sid == second.sid
    assert rejoined.room.num_participants == 1


async def test_ingress_create_list_delete(lk: FakeLiveKit, lkapi: api.LiveKitAPI) -> None:
    info = await create_whip_ingress(lkapi)
    assert info.ingress_id.startswith("IN_") and len(info.stream_key) == 12
    assert info.url == lk.whip_url
    assert info.input_type == api.IngressInput.WHIP_INPUT and info.reusable
    assert info.HasField("enable_transcoding") and not info.enable_transcoding
    assert info.bypass_transcoding and info.state.status == Status.ENDPOINT_INACTIVE

    everything = await call(lkapi.ingress.list_ingress(api.ListIngressRequest()))
    by_room = await call(lkapi.ingress.list_ingress(api.ListIngressRequest(room_name=TEST_ROOM)))
    by_id = api.ListIngressRequest(ingress_id=info.ingress_id)
    assert [i.ingress_id for i in everything.items] == [info.ingress_id]
    assert [i.ingress_id for i in by_room.items] == [info.ingress_id]
    assert (await call(lkapi.ingress.list_ingress(by_id))).items[0].stream_key == info.stream_key
    other = await call(lkapi.ingress.list_ingress(api.ListIngressRequest(room_name="camera_8")))
    assert list(other.items) == []

    deleted = await call(
        lkapi.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=info.ingress_id))
    )
    assert deleted.state.status == Status.ENDPOINT_INACTIVE
    for attempt in (
        lkapi.ingress.list_ingress(by_id),
        lkapi.ingress.delete_ingress(api.DeleteIngressRequest(ingress_id=info.ingress_id)),
    ):
        with pytest.raises(api.TwirpError) as err:
            await call(attempt)
        assert (err.value.code, err.value.message) == ("not_found", "ingress does not exist")

    with pytest.raises(api.TwirpError) as err:
        await call(
            lkapi.ingress.create_ingress(
                api.CreateIngressRequest(input_type=api.IngressInput.WHIP_INPUT)
            )
        )
    assert (err.value.code, err.value.status) == ("invalid_argument", 400)


async def test_whip_brings_ingress_participant_in_and_out(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    lk.no_response_seconds = 0.05
    info = await create_whip_ingress(lkapi)
    lk.join(viewer_token("viewer_r1"))
    session_url = await whip_publish(http, info)
    await lk.settle()

    listed = await call(lkapi.room.list_participants(api.ListParticipantsRequest(room=TEST_ROOM)))
    kinds = {p.identity: p.kind for p in listed.participants}
    assert kinds == {TEST_PUBLISHER: Kind.INGRESS, "viewer_r1": Kind.STANDARD}
    rooms = await call(lkapi.room.list_rooms(api.ListRoomsRequest(names=[TEST_ROOM])))
    assert rooms.rooms[0].num_participants == 2  # the ingress participant counts
    active = (await call(lkapi.ingress.list_ingress(api.ListIngressRequest()))).items[0]
    assert active.state.status == Status.ENDPOINT_PUBLISHING
    assert active.state.room_id == rooms.rooms[0].sid

    headers = {"Content-Type": "application/sdp"}
    async with http.post(f"{info.url}/unknownkey12", data="v=0\r\n", headers=headers) as r:
        assert r.status == 404

    async with http.delete(session_url) as r:
        assert r.status == 200
    async with http.delete(session_url) as r:
        assert r.status == 404
    listed = await call(lkapi.room.list_participants(api.ListParticipantsRequest(room=TEST_ROOM)))
    assert [p.identity for p in listed.participants] == ["viewer_r1"]
    rooms = await call(lkapi.room.list_rooms(api.ListRoomsRequest(names=[TEST_ROOM])))
    assert rooms.rooms[0].num_participants == 1
    ended = (await call(lkapi.ingress.list_ingress(api.ListIngressRequest()))).items[0]
    assert ended.state.status == Status.ENDPOINT_INACTIVE and ended.state.ended_at > 0

    # Re-publishing through the path form works (the ingress is reusable).
    async with http.post(f"{info.url}/{info.stream_key}", data="v=0\r\n", headers=headers) as r:
        assert r.status == 201
    await lk.settle()

    await lk.drain_webhooks()
    started = [e for e in receiver.events if e.event == "ingress_started"]
    assert started[0].room.name == TEST_ROOM and not started[0].room.sid  # minimal room
    ended_events = [e for e in receiver.events if e.event == "ingress_ended"]
    assert ended_events[0].ingress_info.state.status == Status.ENDPOINT_INACTIVE
    joins = [e.participant for e in receiver.events if e.event == "participant_joined"]
    assert [p.kind for p in joins] == [Kind.STANDARD, Kind.INGRESS, Kind.INGRESS]


async def test_webhooks_are_signed_without_bearer(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, receiver: Receiver
) -> None:
    await call(lkapi.room.create_room(api.CreateRoomRequest(name=TEST_ROOM)))
    lk.join(viewer_token("viewer_r1"))
    lk.leave(TEST_ROOM, "viewer_r1")
    await call(lkapi.room.delete_room(api.DeleteRoomRequest(room=TEST_ROOM)))
    await lk.drain_webhooks()

    assert receiver.names == [
        "room_started",
        "participant_joined",
        "participant_left",
        "room_finished",
    ]
    assert all(a and not a.startswith("Bearer") for a in receiver.authorizations)
    assert set(receiver.content_types) == {"application/webhook+json"}
    assert len({e.id for e in receiver.events}) == 4
    assert all(e.id.startswith("EV_") and e.created_at > 0 for e in receiver.events)
    assert receiver.events[2].participant.disconnect_reason == api.DisconnectReason.CLIENT_INITIATED
    assert [a.outcome for a in lk.webhook_log] == ["delivered"] * 4
    body = lk.webhook_log[1].signed.body
    assert '"createdAt":"' in body and '"state":"ACTIVE"' in body  # protojson, lowerCamel


async def test_webhook_retries_keep_the_same_id(lk: FakeLiveKit, receiver: Receiver) -> None:
    receiver.script = [500, 503]
    lk.join(viewer_token("viewer_r1"))
    await lk.drain_webhooks()
    first = [a for a in lk.webhook_log if a.event == "room_started"]
    assert [(a.attempt, a.status, a.outcome) for a in first] == [
        (1, 500, "retry"),
        (2, 503, "retry"),
        (3, 200, "delivered"),
    ]
    assert receiver.names == ["room_started", "participant_joined"]  # order kept

    receiver.script = [400]  # a 4xx counts as delivered: no retry
    lk.leave(TEST_ROOM, "viewer_r1")
    await lk.drain_webhooks()
    assert (lk.webhook_log[-1].status, lk.webhook_log[-1].outcome) == (400, "delivered")

    lk.webhook_url = "http://127.0.0.1:1/unreachable"
    lk.join(viewer_token("viewer_r2"))
    await lk.drain_webhooks()
    assert [a.outcome for a in lk.webhook_log[-3:]] == ["retry", "retry", "failed"]
    assert lk.webhook_log[-1].status is None and lk.webhook_log[-1].error


async def test_crafted_events_duplicates_and_tampering(lk: FakeLiveKit, receiver: Receiver) -> None:
    participant = api.ParticipantInfo(sid="PA_abcdefghijkm", identity="viewer_r9")
    event = lk.new_event("participant_left", room=api.Room(name=TEST_ROOM), participant=participant)
    signed = lk.sign_event(event)
    assert await lk.post_webhook(signed) == 200
    assert await lk.post_webhook(signed) == 200  # a duplicate: same id
    assert [e.id for e in receiver.events] == [event.id, event.id]

    verifier = api.WebhookReceiver(api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET))
    with pytest.raises(Exception, match="hash mismatch"):
        verifier.receive(signed.body.replace("viewer_r9", "viewer_r8"), signed.authorization)
    assert lk.events == []  # crafted events are not part of the fake's own history

    lk.enqueue_event(lk.new_event("room_finished", room=api.Room(name=TEST_ROOM)))
    await lk.drain_webhooks()
    assert receiver.names[-1] == "room_finished"


async def test_stop_and_start_on_the_same_port(lk: FakeLiveKit, lkapi: api.LiveKitAPI) -> None:
    await call(lkapi.room.create_room(api.CreateRoomRequest(name=TEST_ROOM)))
    port = lk.port
    await lk.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(lkapi.room.list_rooms(api.ListRoomsRequest()))
    await lk.start()
    assert lk.port == port
    listed = await call(lkapi.room.list_rooms(api.ListRoomsRequest()))
    assert [r.name for r in listed.rooms] == [TEST_ROOM]  # state survives a restart


async def test_hang_until_released(lk: FakeLiveKit, lkapi: api.LiveKitAPI) -> None:
    lk.hang()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(lkapi.room.list_rooms(api.ListRoomsRequest()), 0.3)
    assert lk.hung_requests == 1
    pending = asyncio.ensure_future(lkapi.room.list_rooms(api.ListRoomsRequest()))
    await asyncio.sleep(0.1)
    assert not pending.done()
    lk.release()
    assert list((await call(pending)).rooms) == []


async def test_stop_drops_hung_requests(lk: FakeLiveKit, lkapi: api.LiveKitAPI) -> None:
    lk.hang()
    pending = asyncio.ensure_future(lkapi.room.list_rooms(api.ListRoomsRequest()))
    await asyncio.sleep(0.1)
    assert lk.hung_requests == 1
    await lk.stop()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(pending)
    await lk.start()
    lk.release()
    assert list((await call(lkapi.room.list_rooms(api.ListRoomsRequest()))).rooms) == []


async def test_join_needs_room_join_grant(lk: FakeLiveKit) -> None:
    no_join = api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET).with_identity("viewer_r1")
    no_join.with_grants(api.VideoGrants(room=TEST_ROOM))
    with pytest.raises(JoinRejected) as err:
        lk.join(no_join.to_jwt())
    assert err.value.status == 401
    assert lk.rooms() == {}


async def test_whip_options_and_errors(lk: FakeLiveKit, http: aiohttp.ClientSession) -> None:
    async with http.options(lk.whip_url) as r:
        assert r.status == 204 and r.headers["Accept-Post"] == "application/sdp"
    headers = {"Content-Type": "application/sdp"}
    async with http.post(lk.whip_url, data="v=0\r\n", headers=headers) as r:
        assert (r.status, r.content_type) == (404, "text/plain")


async def test_delete_room_ends_the_whip_session(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, http: aiohttp.ClientSession
) -> None:
    info = await create_whip_ingress(lkapi)
    await whip_publish(http, info)
    await lk.settle()
    await call(lkapi.room.delete_room(api.DeleteRoomRequest(room=TEST_ROOM)))
    assert lk.whip_sessions == {}
    assert lk.ingresses()[info.ingress_id].state.status == Status.ENDPOINT_INACTIVE
    names = [e.event for e in lk.events]
    assert names[-3:] == ["participant_left", "ingress_ended", "room_finished"]


async def test_idle_rooms_close_with_an_injected_clock() -> None:
    now = [1_000.0]
    async with FakeLiveKit(LIVEKIT_KEY, LIVEKIT_SECRET, clock=lambda: now[0]) as lk:
        lk.join(viewer_token("viewer_r1"))
        lk.leave(TEST_ROOM, "viewer_r1")
        assert lk.close_idle_rooms(now[0] + 19) == []
        assert lk.close_idle_rooms(now[0] + 20) == [TEST_ROOM]  # departure_timeout
        assert lk.events[-1].event == "room_finished"


@dataclass
class Upstream:
    """A WHIP endpoint the fake forwards offers to; records what reached it."""

    url: str = ""
    seen: list[str] = field(default_factory=list)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    sessions = iter(range(1, 100))

    async def offer(request: web.Request) -> web.Response:
        up.seen.append(f"POST {await request.text()}")
        return web.Response(
            status=201, text="v=0 upstream", headers={"Location": f"/sess/{next(sessions)}"}
        )

    async def teardown(request: web.Request) -> web.Response:
        up.seen.append(f"DELETE {request.match_info['n']}")
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/whip", offer)
    app.router.add_delete("/sess/{n}", teardown)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    up.url = f"http://127.0.0.1:{runner.addresses[0][1]}/whip"
    yield up
    await runner.cleanup()


async def test_whip_offer_forwarded_upstream(
    http: aiohttp.ClientSession, upstream: Upstream
) -> None:
    async with FakeLiveKit(LIVEKIT_KEY, LIVEKIT_SECRET, whip_upstream=upstream.url) as lk:
        async with api.LiveKitAPI(lk.url, LIVEKIT_KEY, LIVEKIT_SECRET, timeout=TIMEOUT) as client:
            info = await create_whip_ingress(client)
        headers = {"Authorization": info.stream_key, "Content-Type": "application/sdp"}
        async with http.post(info.url, data="v=0 offer", headers=headers) as r:
            assert (r.status, await r.text()) == (201, "v=0 upstream")
            location = r.headers["Location"]
        async with http.delete(str(URL(info.url).join(URL(location)))) as r:
            assert r.status == 200
        await lk.settle()
    assert upstream.seen == ["POST v=0 offer", "DELETE 1"]


# ---- as strict as the real server --------------------------------------
async def ingress_state(lkapi: api.LiveKitAPI, ingress_id: str) -> api.IngressState:
    listed = await call(lkapi.ingress.list_ingress(api.ListIngressRequest(ingress_id=ingress_id)))
    return listed.items[0].state


async def listed(lkapi: api.LiveKitAPI, room: str = TEST_ROOM) -> list[api.ParticipantInfo]:
    found = await call(lkapi.room.list_participants(api.ListParticipantsRequest(room=room)))
    return list(found.participants)


async def test_whip_post_buffers_then_publishes_after_the_delay(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """201 at once in BUFFERING (no webhook); PUBLISHING, ingress_started and the
    ingress participant's join only after the publish delay."""
    info = await create_whip_ingress(lkapi)
    posted = time.monotonic()
    session_url = await whip_publish(http, info)
    buffering = await ingress_state(lkapi, info.ingress_id)
    assert buffering.status == Status.ENDPOINT_BUFFERING
    assert buffering.started_at == buffering.updated_at > 0
    assert buffering.resource_id == session_url.rsplit("/", 1)[1] and not buffering.room_id
    assert await listed(lkapi) == [] and lk.rooms() == {}
    await lk.drain_webhooks()
    assert receiver.names == []  # BUFFERING sends no webhook

    await lk.settle()
    assert time.monotonic() - posted >= lk.publish_delay_seconds * 0.9
    publishing = await ingress_state(lkapi, info.ingress_id)
    assert publishing.status == Status.ENDPOINT_PUBLISHING
    assert publishing.started_at == buffering.started_at
    assert publishing.updated_at >= publishing.started_at
    assert publishing.room_id == lk.rooms()[TEST_ROOM].sid
    assert [(p.identity, p.kind) for p in await listed(lkapi)] == [(TEST_PUBLISHER, Kind.INGRESS)]
    await lk.drain_webhooks()
    assert receiver.names == ["room_started", "ingress_started", "participant_joined"]

    # The old behaviour on request: no delay publishes inside the POST.
    lk.publish_delay_seconds = 0
    async with http.delete(session_url) as r:
        assert r.status == 200
    await whip_publish(http, info)
    assert (await ingress_state(lkapi, info.ingress_id)).status == Status.ENDPOINT_PUBLISHING


async def test_fail_next_publish_ends_in_error_and_tears_the_session_down(
    http: aiohttp.ClientSession, upstream: Upstream, receiver: Receiver
) -> None:
    """ERROR "source encoder not ready" with ingress_ended, never PUBLISHING; the WHIP
    resource is gone and the upstream session is DELETEd (a real pusher loses its peer)."""
    async with FakeLiveKit(
        LIVEKIT_KEY, LIVEKIT_SECRET, receiver.url, webhook_policy=FAST, whip_upstream=upstream.url
    ) as lk:
        lk.no_response_seconds = 0.05
        async with api.LiveKitAPI(lk.url, LIVEKIT_KEY, LIVEKIT_SECRET, timeout=TIMEOUT) as client:
            info = await create_whip_ingress(client)
            lk.fail_next_publish(info.ingress_id)
            headers = {"Authorization": f"Bearer {info.stream_key}"}
            async with http.post(info.url, data="v=0 first", headers=headers) as r:
                assert r.status == 201
                session_url = str(URL(info.url).join(URL(r.headers["Location"])))
            await lk.settle()
            failed = await ingress_state(client, info.ingress_id)
            assert failed.status == Status.ENDPOINT_ERROR
            assert failed.error == "source encoder not ready"
            assert failed.ended_at == failed.updated_at >= failed.started_at
            assert await listed(client) == []
            async with http.delete(session_url) as r:
                assert r.status == 404  # the session is gone
            assert upstream.seen == ["POST v=0 first", "DELETE 1"]

            async with http.post(info.url, data="v=0 second", headers=headers) as r:
                assert r.status == 201  # the rule was used up: this one publishes
            await lk.settle()
            assert (await ingress_state(client, info.ingress_id)).status == (
                Status.ENDPOINT_PUBLISHING
            )
        await lk.drain_webhooks()
    ended = receiver.events[0]
    assert ended.event == "ingress_ended" and ended.room.name == TEST_ROOM
    assert ended.ingress_info.state.status == Status.ENDPOINT_ERROR
    assert ended.ingress_info.state.error == "source encoder not ready"
    assert receiver.names[1:] == ["room_started", "ingress_started", "participant_joined"]


async def test_a_second_whip_post_evicts_the_first_publisher(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """accepted (no 409); the new session's participant evicts the old one with
    DUPLICATE_IDENTITY, and the old resource is gone (404 after the psrpc timeout)."""
    lk.no_response_seconds = 0.3
    info = await create_whip_ingress(lkapi)
    first_url = await whip_publish(http, info)
    await lk.settle()
    [first] = await listed(lkapi)

    second_url = await whip_publish(http, info)  # 201, not 409
    state = await ingress_state(lkapi, info.ingress_id)
    assert state.status == Status.ENDPOINT_BUFFERING
    assert state.resource_id == second_url.rsplit("/", 1)[1]
    assert [p.sid for p in await listed(lkapi)] == [first.sid]  # still publishing meanwhile

    await lk.settle()
    [second] = await listed(lkapi)
    assert second.identity == TEST_PUBLISHER and second.sid != first.sid
    assert (await ingress_state(lkapi, info.ingress_id)).status == Status.ENDPOINT_PUBLISHING
    await lk.drain_webhooks()
    assert receiver.names[-3:] == ["ingress_started", "participant_left", "participant_joined"]
    left, joined = receiver.events[-2].participant, receiver.events[-1].participant
    assert (left.sid, left.disconnect_reason) == (
        first.sid,
        api.DisconnectReason.DUPLICATE_IDENTITY,
    )
    assert joined.sid == second.sid
    assert "ingress_ended" not in receiver.names  # the old session's end changes no state

    started = time.monotonic()
    async with http.delete(first_url) as r:
        assert r.status == 404
    assert time.monotonic() - started >= 0.25
    async with http.delete(second_url) as r:
        assert r.status == 200
    assert (await ingress_state(lkapi, info.ingress_id)).status == Status.ENDPOINT_INACTIVE


async def test_a_ghost_participant_cannot_be_removed(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, receiver: Receiver
) -> None:
    """a record left in the store by an unclean stop is listed ACTIVE, sends no webhook,
    and RemoveParticipant answers 503 `unavailable` after the psrpc timeout."""
    lk.no_response_seconds = 0.3
    info = await create_whip_ingress(lkapi)
    viewer = lk.ghost(TEST_ROOM, "viewer_r1")
    publisher = lk.ghost(TEST_ROOM, TEST_PUBLISHER, Kind.INGRESS)
    assert publisher.attributes["ingress.ingressID"] == info.ingress_id
    people = {p.identity: (p.kind, p.state) for p in await listed(lkapi)}
    assert people == {
        "viewer_r1": (Kind.STANDARD, api.ParticipantInfo.State.ACTIVE),
        TEST_PUBLISHER: (Kind.INGRESS, api.ParticipantInfo.State.ACTIVE),
    }
    assert (await ingress_state(lkapi, info.ingress_id)).status == Status.ENDPOINT_INACTIVE
    [room] = (await call(lkapi.room.list_rooms(api.ListRoomsRequest()))).rooms
    assert room.num_participants == 2  # the store's stale count

    for identity in ("viewer_r1", TEST_PUBLISHER):
        started = time.monotonic()
        target = api.RoomParticipantIdentity(room=TEST_ROOM, identity=identity)
        with pytest.raises(api.TwirpError) as err:
            await call(lkapi.room.remove_participant(target))
        assert (err.value.code, err.value.status) == ("unavailable", 503)
        assert err.value.message == "no response from servers"
        assert time.monotonic() - started >= 0.25
    got = await call(
        lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=TEST_ROOM, identity="viewer_r1")
        )
    )
    assert got.sid == viewer.sid  # still in the store

    joined = lk.join(viewer_token("viewer_r1"))  # a real join overwrites the record silently
    assert {p.identity: p.sid for p in await listed(lkapi)}["viewer_r1"] == joined.sid
    lk.remove_ghost(TEST_ROOM, TEST_PUBLISHER)
    assert [p.identity for p in await listed(lkapi)] == ["viewer_r1"]
    await lk.drain_webhooks()
    assert receiver.names == ["room_started", "participant_joined"]  # the join only


async def test_a_viewer_that_never_connects_is_aborted_not_left(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, receiver: Receiver
) -> None:
    """JOINING is listed; participant_joined only at ACTIVE; a participant that never
    connected gets participant_connection_aborted."""
    joining = lk.begin_join(viewer_token("viewer_r1"))
    [listed_one] = await listed(lkapi)
    assert (listed_one.sid, listed_one.state) == (joining.sid, api.ParticipantInfo.State.JOINING)
    await lk.drain_webhooks()
    assert receiver.names == ["room_started"]
    lk.abort_join(TEST_ROOM, "viewer_r1")
    assert await listed(lkapi) == []

    lk.begin_join(viewer_token("viewer_r2"))
    active = lk.activate(TEST_ROOM, "viewer_r2")
    assert active.state == api.ParticipantInfo.State.ACTIVE
    lk.leave(TEST_ROOM, "viewer_r2")
    await lk.drain_webhooks()
    assert receiver.names == [
        "room_started",
        "participant_connection_aborted",
        "participant_joined",
        "participant_left",
    ]
    aborted = receiver.events[1].participant
    assert (aborted.sid, aborted.state) == (joining.sid, api.ParticipantInfo.State.DISCONNECTED)
    assert aborted.disconnect_reason == api.DisconnectReason.JOIN_FAILURE
    assert receiver.events[2].participant.state == api.ParticipantInfo.State.ACTIVE


async def test_create_room_keeps_a_live_rooms_timeouts(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI
) -> None:
    """CreateRoom on a live room ignores the request's timeouts; a room an early viewer
    auto-created keeps the server defaults."""
    create = lkapi.room.create_room
    room = await call(
        create(api.CreateRoomRequest(name=TEST_ROOM, empty_timeout=60, departure_timeout=10))
    )
    again = await call(
        create(api.CreateRoomRequest(name=TEST_ROOM, empty_timeout=120, departure_timeout=15))
    )
    assert again.sid == room.sid
    assert (again.empty_timeout, again.departure_timeout) == (60, 10)

    lk.join(viewer_token("viewer_r1", room="camera_8"))
    early = await call(
        create(api.CreateRoomRequest(name="camera_8", empty_timeout=120, departure_timeout=15))
    )
    assert (early.empty_timeout, early.departure_timeout) == (300, 20)

    lk.create_room_overwrites_live = True  # the fake's old behaviour, on request
    later = await call(create(api.CreateRoomRequest(name=TEST_ROOM, empty_timeout=120)))
    assert (later.empty_timeout, later.departure_timeout) == (120, 10)


# twirp.ServerHTTPStatusFromErrorCode, independently of the fake's table.
TWIRP_STATUSES = {
    "canceled": 408, "unknown": 500, "invalid_argument": 400, "malformed": 400,
    "deadline_exceeded": 408, "not_found": 404, "bad_route": 404, "already_exists": 409,
    "permission_denied": 403, "unauthenticated": 401, "resource_exhausted": 429,
    "failed_precondition": 412, "aborted": 409, "out_of_range": 400, "unimplemented": 501,
    "internal": 500, "unavailable": 503, "dataloss": 500,
}  # fmt: skip


async def test_every_twirp_code_has_its_http_status(lk: FakeLiveKit, lkapi: api.LiveKitAPI) -> None:
    for code, status in TWIRP_STATUSES.items():
        lk.fail_rpc("ListRooms", code, msg=f"scripted {code}")
        with pytest.raises(api.TwirpError) as err:
            await call(lkapi.room.list_rooms(api.ListRoomsRequest()))
        assert (err.value.code, err.value.status, err.value.message) == (
            code, status, f"scripted {code}"
        )  # fmt: skip
    assert list((await call(lkapi.room.list_rooms(api.ListRoomsRequest()))).rooms) == []


async def test_scripted_408_and_503_for_retries(lk: FakeLiveKit, lkapi: api.LiveKitAPI) -> None:
    """a given RPC answers 408 deadline_exceeded / 503 unavailable N times, before or
    after the call took effect."""
    lk.join(viewer_token("viewer_r1"))
    lk.join(viewer_token("viewer_r2"))
    target = api.RoomParticipantIdentity(room=TEST_ROOM, identity="viewer_r1")
    lk.fail_rpc("livekit.RoomService/RemoveParticipant", "deadline_exceeded", times=2)
    lk.fail_rpc("RemoveParticipant", "unavailable")
    seen = []
    for _ in range(3):
        with pytest.raises(api.TwirpError) as err:
            await call(lkapi.room.remove_participant(target))
        seen.append((err.value.code, err.value.status, err.value.message))
    assert seen == [
        ("deadline_exceeded", 408, "request timed out"),
        ("deadline_exceeded", 408, "request timed out"),
        ("unavailable", 503, "no response from servers"),
    ]
    assert {p.identity for p in await listed(lkapi)} == {"viewer_r1", "viewer_r2"}  # no effect
    await call(lkapi.room.remove_participant(target))  # the script is used up

    lk.fail_rpc("RemoveParticipant", "deadline_exceeded", after=True)
    other = api.RoomParticipantIdentity(room=TEST_ROOM, identity="viewer_r2")
    with pytest.raises(api.TwirpError) as err:
        await call(lkapi.room.remove_participant(other))
    assert err.value.status == 408
    assert await listed(lkapi) == []  # it took effect all the same
    assert lk.rpc_faults_fired == [
        ("livekit.RoomService/RemoveParticipant", "deadline_exceeded")
    ] * 2 + [
        ("livekit.RoomService/RemoveParticipant", "unavailable"),
        ("livekit.RoomService/RemoveParticipant", "deadline_exceeded"),
    ]
    with pytest.raises(ValueError):
        lk.fail_rpc("ListRooms", "teapot")


async def test_whip_delete_details(
    lk: FakeLiveKit,
    lkapi: api.LiveKitAPI,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """an unknown resource answers 404 after about a second; a wrong stream key on a
    known resource is only logged."""
    info = await create_whip_ingress(lkapi)
    session_url = await whip_publish(http, info)
    await lk.settle()
    started = time.monotonic()
    async with http.delete(f"{lk.whip_url}/{info.stream_key}/WH_unknown1234") as r:
        assert (r.status, await r.text()) == (404, "ingress not found")
    assert 0.9 <= time.monotonic() - started < 2.5  # the default psrpc timeout: 1 s

    wrong_key = session_url.replace(info.stream_key, "wrongkey1234")
    with caplog.at_level(logging.INFO, logger="tests.fakes.livekit.sessions"):
        async with http.delete(wrong_key) as r:
            assert (r.status, await r.read()) == (200, b"")
    assert "wrong stream key" in caplog.text
    assert (await ingress_state(lkapi, info.ingress_id)).status == Status.ENDPOINT_INACTIVE


async def test_whip_patch_and_unchecked_content_type(
    lk: FakeLiveKit, lkapi: api.LiveKitAPI, http: aiohttp.ClientSession
) -> None:
    """no Content-Type/Accept check; PATCH is an ICE restart only (`If-Match: *`)."""
    lk.no_response_seconds = 0.05
    info = await create_whip_ingress(lkapi)
    headers = {"Authorization": f"Bearer {info.stream_key}", "Content-Type": "text/plain"}
    async with http.post(info.url, data="v=0\r\n", headers={**headers, "Accept": "x/y"}) as r:
        assert (r.status, r.content_type) == (201, "application/sdp")
        session_url = str(URL(info.url).join(URL(r.headers["Location"])))

    frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n"
    trickle = {"Content-Type": "application/trickle-ice-sdpfrag"}
    async with http.patch(session_url, data=frag, headers=trickle) as r:
        assert (r.status, await r.text()) == (422, "Trickle-ICE not supported")
    async with http.patch(session_url, data=frag, headers={**trickle, "If-Match": "*"}) as r:
        assert (r.status, r.content_type) == (200, "application/trickle-ice-sdpfrag")
        assert r.headers["ETag"] and "a=ice-ufrag:" in await r.text()
    async with http.patch(session_url, data="a=mid:0\r\n", headers=trickle) as r:
        assert r.status == 400
    async with http.patch(f"{session_url}x", data=frag, headers={**trickle, "If-Match": "*"}) as r:
        assert (r.status, await r.text()) == (503, "no response from servers")
    async with http.options(session_url) as r:
        assert r.headers["Access-Control-Allow-Methods"] == "PATCH, OPTIONS, DELETE"
