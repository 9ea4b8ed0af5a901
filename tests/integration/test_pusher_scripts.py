"""The pusher state machine (docs/architecture.md, flows 1 and 2) against a real Valkey,
through its typed wrappers.

Two ``PusherStore``s on one client model two replicas (owners ``A`` and ``B``). Time moves
with ``clock_offset_ms`` on every store at once (:class:`World.advance`), never by sleeping.
Leases last ten minutes here so that long backoff sequences never lose their viewers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from orchestrator.domain.backoff import RestartPolicy
from orchestrator.domain.pusher import PusherView
from orchestrator.errors import InvalidInput
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.pushers import PusherStore
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts, outcome
from tests.harness.constants import LIMITS
from tests.harness.store import add_cameras, release_by_id

CAM = "cam-1"
SOURCE = "METRO"
LEASE_MS = 600_000
GRACE_MS = 3_000
CLAIM_MS = 30_000
STABLE_MS = 60_000
MAX_DELAY_MS = 60_000


@dataclass
class World:
    client: Redis
    scripts: Scripts
    leases: ReservationStore
    a: PusherStore
    b: PusherStore
    offset_ms: int = 0

    def advance(self, ms: int) -> None:
        """Move every store's clock forward by ``ms``."""
        self.offset_ms += ms
        for party in (self.leases, self.a, self.b):
            party.clock_offset_ms = self.offset_ms

    async def now_ms(self) -> int:
        """The scripts' clock: the server's time plus the current offset."""
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000 + self.offset_ms

    async def view(self, camera_id: str = CAM) -> PusherView:
        return await self.a.view(camera_id)

    async def active(self) -> set[str]:
        return {str(c) for c in await self.client.smembers(keys.ACTIVE_CAMERAS)}

    async def running(self, camera_id: str = CAM, container_id: str = "c-1") -> int:
        """Reserve the first viewer (A claims) and mark A's container running; the generation."""
        admission = await self.leases.reserve(camera_id, SOURCE, "alice")
        assert admission.claimed
        assert await self.a.mark_running(camera_id, admission.generation, container_id)
        return admission.generation

    async def stopping(self, stopper: PusherStore, camera_id: str = CAM) -> int:
        """From a running camera with one viewer: release it, let the grace pass, stop."""
        admission = await self.leases.reserve(camera_id, SOURCE, "alice")
        assert admission.claimed
        assert await self.a.mark_running(camera_id, admission.generation, "c-1")
        await release_by_id(self.leases, admission.reservation_id)
        self.advance(GRACE_MS + 1)
        generation = await stopper.begin_stop(camera_id)
        assert generation == admission.generation
        return generation


async def first_rid(world: World, camera_id: str = CAM) -> str:
    """The reservation id of the camera's first live lease."""
    members = await world.client.zrange(keys.camera_leases(camera_id), 0, 0)
    return str(members[0]).split("|", 1)[0]


def pusher(client: Redis, scripts: Scripts, owner: str) -> PusherStore:
    return PusherStore(
        client,
        scripts,
        owner=owner,
        claim_ms=CLAIM_MS,
        restart=RestartPolicy(max_seconds=MAX_DELAY_MS / 1000, stable_seconds=STABLE_MS / 1000),
    )


@pytest.fixture
async def world(client: Redis, scripts: Scripts, registry: CameraRegistry) -> World:
    await add_cameras(registry, CAM, "cam-2")
    policy = LeasePolicy(
        lease_ms=LEASE_MS, drain_grace_ms=GRACE_MS, claim_ms=CLAIM_MS, default_limits=LIMITS
    )
    leases = ReservationStore(client, scripts, policy, owner="A")
    return World(
        client, scripts, leases, pusher(client, scripts, "A"), pusher(client, scripts, "B")
    )


# --- claim and running ----------------------------------------------------------------


async def test_first_reserve_claims_starting_generation_one(world: World) -> None:
    first = await world.leases.reserve(CAM, SOURCE, "alice")
    assert first.claimed and first.generation == 1 and first.pusher_state == "STARTING"
    view = await world.view()
    assert view.state == "STARTING" and view.generation == 1
    assert view.claim_deadline_ms is not None
    assert view.claim_deadline_ms - await world.now_ms() <= CLAIM_MS
    meta = await world.client.hgetall(keys.metadata(CAM))
    assert meta["owner"] == "A"
    assert await world.active() == {CAM}

    second = await world.leases.reserve(CAM, SOURCE, "bob")
    assert not second.claimed and second.generation == 1 and second.pusher_state == "STARTING"
    assert await world.a.claim(CAM) is None  # the claim is live: nobody else may take it
    assert await world.b.claim(CAM) is None


async def test_mark_running_is_fenced_by_generation(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    assert not await world.a.mark_running(CAM, 2, "c-future")  # a generation never handed out
    assert (await world.view()).state == "STARTING"

    assert await world.a.mark_running(CAM, admission.generation, "c-1")
    view = await world.view()
    assert view.state == "RUNNING" and view.generation == 1 and view.container_id == "c-1"
    assert view.claim_deadline_ms is None

    # A second report for the same generation (RUNNING already) and a stale one change nothing.
    assert not await world.a.mark_running(CAM, 1, "c-other")
    assert not await world.b.mark_running(CAM, 2, "c-other")
    assert (await world.view()).container_id == "c-1"
    assert await world.b.claim(CAM) is None  # RUNNING is never due for a claim


async def test_placement_is_fenced_by_generation_and_workload_and_shown_for_its_own(
    world: World,
) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    assert await world.a.mark_running(CAM, admission.generation, "svc-1")
    no_room = "no suitable node (insufficient resources on 2 nodes)"
    assert await world.a.record_placement(CAM, 1, "svc-1", None, no_room)
    assert ((await world.view()).node, (await world.view()).waiting) == (None, no_room)
    assert await world.a.record_placement(CAM, 1, "svc-1", "worker-2", None)
    assert ((await world.view()).node, (await world.view()).waiting) == ("worker-2", None)
    assert not await world.a.record_placement(CAM, 1, "svc-old", "worker-1", None)  # stale ref
    assert not await world.a.record_placement(CAM, 2, "svc-1", "worker-1", None)  # no such gen
    assert (await world.view()).node == "worker-2"
    await world.a.mark_failed(CAM, 1, "lost", container_id="svc-1", displaced=True)
    assert await world.a.claim(CAM) == 2  # displaced: due at once, no backoff
    assert (await world.view()).node is None, "an older generation's node is not shown"
    # The runtime's words are made safe before the script sees them; the script refuses raw.
    assert await world.a.mark_running(CAM, 2, "svc-2")
    assert await world.a.record_placement(CAM, 2, "svc-2", "odd host!", "line\nbreak")
    assert ((await world.view()).node, (await world.view()).waiting) == ("odd_host_", "line break")


async def test_abandoned_start_claim_is_taken_over_with_next_generation(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    assert admission.generation == 1
    world.advance(CLAIM_MS - 1_000)
    assert await world.b.claim(CAM) is None  # not yet abandoned

    world.advance(1_001)
    assert await world.b.claim(CAM) == 2
    meta = await world.client.hgetall(keys.metadata(CAM))
    assert meta["state"] == "STARTING" and meta["owner"] == "B"

    assert not await world.a.mark_running(CAM, 1, "c-late")  # A's late report is stale
    assert await world.a.mark_failed(CAM, 1, "late failure") is None
    assert await world.b.mark_running(CAM, 2, "c-2")
    view = await world.view()
    assert view.state == "RUNNING" and view.generation == 2 and view.container_id == "c-2"


async def test_viewer_arriving_after_abandoned_claim_takes_it_over(world: World) -> None:
    await world.leases.reserve(CAM, SOURCE, "alice")
    world.advance(CLAIM_MS + 1)
    late = await world.leases.reserve(CAM, SOURCE, "bob")
    assert late.claimed and late.generation == 2 and late.pusher_state == "STARTING"
    assert not await world.a.mark_running(CAM, 1, "c-1")
    assert await world.a.mark_running(CAM, 2, "c-2")


async def test_claim_of_idle_camera_with_viewers_joins_active_set(world: World) -> None:
    """Metadata lost while leases live (e.g. a restore): a claim rebuilds it."""
    await world.leases.reserve(CAM, SOURCE, "alice")
    await world.client.delete(keys.metadata(CAM))
    await world.client.srem(keys.ACTIVE_CAMERAS, CAM)
    assert await world.b.claim(CAM) == 1
    view = await world.view()
    assert view.state == "STARTING" and view.attempts == 0
    assert await world.active() == {CAM}


async def test_claim_without_viewers_is_refused(world: World) -> None:
    assert await world.a.claim(CAM) is None
    assert not await world.client.exists(keys.metadata(CAM))
    assert await world.active() == set()


# --- drain, stop, stopped -------------------------------------------------------------


async def test_release_of_last_lease_drains_and_viewer_resumes_without_claim(
    world: World,
) -> None:
    await world.running()
    extra = await world.leases.reserve(CAM, SOURCE, "bob")
    release = await release_by_id(world.leases, extra.reservation_id)
    assert release.released and not release.camera_empty
    assert (await world.view()).state == "RUNNING"  # a viewer is left

    before = await world.now_ms()
    release = await release_by_id(world.leases, await first_rid(world))
    after = await world.now_ms()
    assert release.released and release.camera_empty
    assert before + GRACE_MS <= release.drain_deadline_ms <= after + GRACE_MS
    view = await world.view()
    assert view.state == "DRAINING" and view.resume == "RUNNING" and view.generation == 1
    assert view.drain_deadline_ms == release.drain_deadline_ms
    assert view.container_id == "c-1"
    assert await world.active() == {CAM}

    assert await world.a.begin_stop(CAM) is None  # grace not over
    assert await world.b.begin_stop(CAM) is None
    assert (await world.view()).state == "DRAINING"

    back = await world.leases.reserve(CAM, SOURCE, "dave")
    assert not back.claimed and back.generation == 1 and back.pusher_state == "RUNNING"
    view = await world.view()
    assert view.state == "RUNNING" and view.container_id == "c-1"
    assert view.drain_deadline_ms is None and view.resume is None


async def test_viewer_during_drain_of_starting_camera_resumes_the_claim(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    await release_by_id(world.leases, admission.reservation_id)
    view = await world.view()
    assert view.state == "DRAINING" and view.resume == "STARTING"
    back = await world.leases.reserve(CAM, SOURCE, "bob")
    assert not back.claimed and back.generation == 1 and back.pusher_state == "STARTING"
    assert await world.a.mark_running(CAM, 1, "c-1")


async def test_viewer_during_drain_of_abandoned_claim_claims_next_generation(
    world: World,
) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    await release_by_id(world.leases, admission.reservation_id)
    world.advance(CLAIM_MS + 1)  # the claimant died while the camera drained
    back = await world.leases.reserve(CAM, SOURCE, "bob")
    assert back.claimed and back.generation == 2 and back.pusher_state == "STARTING"
    view = await world.view()
    assert view.drain_deadline_ms is None and view.resume is None
    assert not await world.a.mark_running(CAM, 1, "c-1")


async def test_claim_drained_before_its_container_came_up_is_stopped(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    await release_by_id(world.leases, admission.reservation_id)
    world.advance(GRACE_MS + 1)
    assert await world.b.begin_stop(CAM) == 1
    assert not await world.a.mark_running(CAM, 1, "c-1")  # too late: the stop owns it
    assert await world.b.stopped(CAM, 1) is None
    assert (await world.view()).state == "IDLE"


async def test_container_up_during_drain_of_starting_camera_records_it(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    await release_by_id(world.leases, admission.reservation_id)
    assert await world.a.mark_running(CAM, 1, "c-1")
    view = await world.view()
    assert view.state == "DRAINING" and view.resume == "RUNNING" and view.container_id == "c-1"


async def test_forced_stop_skips_the_grace_but_never_a_live_camera(world: World) -> None:
    """The on-call reset: ``force`` ends a drain early, yet resumes a camera with viewers and
    never takes over a stop that another process owns."""
    await world.running()
    await release_by_id(world.leases, await first_rid(world))
    assert await world.b.begin_stop(CAM) is None  # grace not over
    assert await world.b.begin_stop(CAM, force=True) == 1
    assert (await world.view()).state == "STOPPING"
    assert await world.a.begin_stop(CAM, force=True) is None  # B's stop, deadline ahead
    assert await world.b.stopped(CAM, 1) is None
    assert (await world.view()).state == "IDLE"

    await world.leases.reserve(CAM, SOURCE, "erin")
    assert await world.a.begin_stop(CAM, force=True) is None  # viewers: nothing to stop
    assert (await world.view()).state == "STARTING"


async def test_drain_deadline_passed_stops_then_idles(world: World) -> None:
    await world.running()
    release = await release_by_id(world.leases, await first_rid(world))
    assert release.camera_empty and release.drain_deadline_ms > 0

    world.advance(GRACE_MS - 500)
    assert await world.b.begin_stop(CAM) is None
    world.advance(501)
    assert await world.b.begin_stop(CAM) == 1
    view = await world.view()
    assert view.state == "STOPPING" and view.generation == 1
    assert view.drain_deadline_ms is None and view.resume is None
    assert view.claim_deadline_ms is not None
    meta = await world.client.hgetall(keys.metadata(CAM))
    assert meta["owner"] == "B"
    assert await world.a.begin_stop(CAM) is None  # the stop is B's until its deadline

    assert await world.a.stopped(CAM, 2) is None  # a generation that is not stopping: stale
    assert (await world.view()).state == "STOPPING"

    assert await world.b.stopped(CAM, 1) is None  # no viewers: IDLE, no next generation
    view = await world.view()
    assert view.state == "IDLE" and view.generation == 1 and view.container_id is None
    meta = await world.client.hgetall(keys.metadata(CAM))
    assert "owner" not in meta and "claim_deadline" not in meta
    assert await world.active() == set()

    assert await world.b.stopped(CAM, 1) is None  # a repeated report changes nothing
    assert (await world.view()).state == "IDLE"
    again = await world.leases.reserve(CAM, SOURCE, "erin")
    assert again.claimed and again.generation == 2
    assert await world.active() == {CAM}


async def test_viewer_during_stopping_is_started_by_the_stopper(world: World) -> None:
    generation = await world.stopping(world.b)
    late = await world.leases.reserve(CAM, SOURCE, "bob")
    assert not late.claimed and late.generation == generation
    assert late.pusher_state == "STOPPING"
    assert await world.a.claim(CAM) is None  # the stopper is alive: no claim next to it
    assert await world.a.begin_stop(CAM) is None  # viewers are back
    assert not await world.a.mark_running(CAM, generation, "c-1")

    assert await world.b.stopped(CAM, generation) == generation + 1
    view = await world.view()
    assert view.state == "STARTING" and view.generation == generation + 1
    assert view.container_id is None and view.attempts == 0
    meta = await world.client.hgetall(keys.metadata(CAM))
    assert meta["owner"] == "B"
    assert await world.active() == {CAM}

    assert await world.b.stopped(CAM, generation) is None  # stale now
    assert await world.b.mark_running(CAM, generation + 1, "c-2")
    assert (await world.view()).state == "RUNNING"


async def test_abandoned_stop_is_taken_over(world: World) -> None:
    generation = await world.stopping(world.b)
    world.advance(CLAIM_MS + 1)
    assert await world.a.begin_stop(CAM) == generation  # B died: A finishes the stop
    meta = await world.client.hgetall(keys.metadata(CAM))
    assert meta["state"] == "STOPPING" and meta["owner"] == "A"
    assert await world.a.stopped(CAM, generation) is None
    assert (await world.view()).state == "IDLE"


async def test_viewer_after_abandoned_stop_claims_next_generation(world: World) -> None:
    generation = await world.stopping(world.b)
    world.advance(CLAIM_MS + 1)
    late = await world.leases.reserve(CAM, SOURCE, "bob")
    assert late.claimed and late.generation == generation + 1
    assert late.pusher_state == "STARTING"
    assert await world.b.stopped(CAM, generation) is None  # B's late report is stale
    assert (await world.view()).state == "STARTING"


async def test_expired_lease_drains_like_a_release(world: World) -> None:
    await world.running()
    world.advance(LEASE_MS + 1)
    report = await world.leases.expire_all()
    assert report.expired == 1 and report.emptied_cameras == [CAM]
    view = await world.view()
    assert view.state == "DRAINING" and view.resume == "RUNNING"
    world.advance(GRACE_MS + 1)
    assert await world.a.begin_stop(CAM) == 1


# --- failures and restarts ------------------------------------------------------------


async def test_start_failure_by_generation_schedules_first_retry(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    before = await world.now_ms()
    retry_at = await world.a.mark_failed(CAM, admission.generation, "image missing")
    after = await world.now_ms()
    assert retry_at is not None
    assert before + 1_000 <= retry_at <= after + 2_000
    view = await world.view()
    assert view.state == "FAILED" and view.generation == 1
    assert view.attempts == 1 and view.restarts == 1 and view.retry_at_ms == retry_at
    assert view.last_error == "image missing" and view.claim_deadline_ms is None
    assert await world.active() == {CAM}

    # A repeated report of the same failure is stale: the count does not move twice.
    assert await world.a.mark_failed(CAM, admission.generation, "image missing") is None
    assert (await world.view()).restarts == 1
    assert not await world.a.mark_running(CAM, admission.generation, "c-1")

    assert await world.b.claim(CAM) is None  # before retry_at
    world.advance(retry_at - before)
    assert await world.b.claim(CAM) == 2
    view = await world.view()
    assert view.state == "STARTING" and view.attempts == 1 and view.restarts == 1


async def test_viewer_during_failed_backoff_does_not_claim(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    assert await world.a.mark_failed(CAM, admission.generation, "boom") is not None
    late = await world.leases.reserve(CAM, SOURCE, "bob")
    assert not late.claimed and late.pusher_state == "FAILED" and late.generation == 1


async def test_repeated_failures_back_off_up_to_the_cap(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    generation = admission.generation
    delays: list[tuple[int, int]] = []  # (lowest, highest) possible delay of each attempt
    for attempt in range(1, 11):
        before = await world.now_ms()
        retry_at = await world.a.mark_failed(CAM, generation, f"failure {attempt}")
        after = await world.now_ms()
        assert retry_at is not None
        delays.append((retry_at - after, retry_at - before))
        view = await world.view()
        assert view.state == "FAILED"
        assert view.attempts == attempt and view.restarts == attempt
        assert view.last_error == f"failure {attempt}"

        assert await world.b.claim(CAM) is None
        world.advance(retry_at - before)
        claimer = world.b if attempt % 2 else world.a
        next_generation = await claimer.claim(CAM)
        assert next_generation == generation + 1
        generation = next_generation

    lo, hi = delays[0]
    assert lo <= 2_000 and hi >= 1_000  # the first delay lies in [1 s, 2 s]
    for (lo_a, _), (_, hi_b) in itertools.pairwise(delays):
        assert hi_b >= lo_a  # the delays never shrink...
    for index, (lo_n, hi_n) in enumerate(delays):
        base = min(1_000 * 2**index, MAX_DELAY_MS)
        assert lo_n <= min(base + 1_000, MAX_DELAY_MS) and hi_n >= base  # ...double per attempt
        assert lo_n <= MAX_DELAY_MS  # ...and never exceed the cap
    assert delays[-1][0] <= MAX_DELAY_MS <= delays[-1][1]  # attempt 10: capped exactly


async def test_running_container_death_matched_by_container_id(world: World) -> None:
    await world.running(container_id="c-1")
    assert await world.b.mark_failed(CAM, 1, "died", container_id="c-other") is None
    view = await world.view()
    assert view.state == "RUNNING" and view.restarts == 0 and view.container_id == "c-1"

    before = await world.now_ms()
    retry_at = await world.b.mark_failed(CAM, 1, "exit 137", container_id="c-1")
    after = await world.now_ms()
    assert retry_at is not None and before + 1_000 <= retry_at <= after + 2_000
    view = await world.view()
    assert view.state == "FAILED" and view.container_id is None
    assert view.attempts == 1 and view.restarts == 1 and view.last_error == "exit 137"

    # The same death reported again (events and the reconciler both saw it) is stale.
    assert await world.a.mark_failed(CAM, 1, "exit 137", container_id="c-1") is None
    assert (await world.view()).restarts == 1


async def test_crash_loop_backs_off_but_stable_run_restarts_fast(world: World) -> None:
    await world.running(container_id="c-1")
    assert await world.a.mark_failed(CAM, 1, "crash", container_id="c-1") is not None
    view = await world.view()
    assert view.retry_at_ms is not None
    world.advance(view.retry_at_ms - await world.now_ms() + 1)
    assert await world.a.claim(CAM) == 2
    assert await world.a.mark_running(CAM, 2, "c-2")
    # A quick second crash: attempt 2 (the delay grows).
    before = await world.now_ms()
    retry_at = await world.a.mark_failed(CAM, 2, "crash", container_id="c-2")
    assert retry_at is not None and retry_at - before >= 2_000
    assert (await world.view()).attempts == 2

    world.advance(retry_at - before + 1)
    assert await world.a.claim(CAM) == 3
    assert await world.a.mark_running(CAM, 3, "c-3")
    world.advance(STABLE_MS)
    # It ran for the stable time: the next crash counts as attempt 1 again, restarts keep going.
    before = await world.now_ms()
    retry_at = await world.a.mark_failed(CAM, 3, "rare crash", container_id="c-3")
    after = await world.now_ms()
    assert retry_at is not None and before + 1_000 <= retry_at <= after + 2_000
    view = await world.view()
    assert view.attempts == 1 and view.restarts == 3


async def test_failure_while_draining_keeps_draining(world: World) -> None:
    await world.running(container_id="c-1")
    await release_by_id(world.leases, await first_rid(world))
    assert await world.a.mark_failed(CAM, 1, "died", container_id="c-1") is not None
    view = await world.view()
    assert view.state == "DRAINING" and view.resume == "FAILED" and view.restarts == 1
    back = await world.leases.reserve(CAM, SOURCE, "bob")
    assert not back.claimed and back.pusher_state == "FAILED"


async def test_failures_during_stopping_are_ignored(world: World) -> None:
    generation = await world.stopping(world.b)
    assert await world.a.mark_failed(CAM, generation, "stopped by us") is None
    assert await world.a.mark_failed(CAM, generation, "exit 143", container_id="c-1") is None
    view = await world.view()
    assert view.state == "STOPPING" and view.restarts == 0 and view.attempts == 0
    assert view.retry_at_ms is None and view.last_error is None


async def test_failure_of_idle_camera_is_stale(world: World) -> None:
    assert await world.a.mark_failed(CAM, 1, "nothing runs") is None
    assert not await world.client.exists(keys.metadata(CAM))


# --- fence ----------------------------------------------------------------------------


async def test_fence_raises_generation_to_orphan_label_and_never_lowers(world: World) -> None:
    assert await world.a.fence(CAM, 0) == 0
    assert await world.a.fence(CAM, 5) == 5
    view = await world.view()
    assert view.state == "IDLE" and view.generation == 5
    assert await world.a.fence(CAM, 3) == 5  # never lowers
    assert await world.a.fence(CAM, 5) == 5
    assert (await world.view()).generation == 5
    assert await world.active() == set()

    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    assert admission.claimed and admission.generation == 6  # newer than the orphan's


async def test_fence_is_busy_while_viewers_or_a_pusher_exist(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    assert await world.a.fence(CAM, 9) is None  # STARTING with viewers
    assert await world.a.mark_running(CAM, admission.generation, "c-1")
    assert await world.a.fence(CAM, 9) is None  # RUNNING

    await release_by_id(world.leases, admission.reservation_id)
    assert await world.a.fence(CAM, 9) is None  # DRAINING, no viewers: still busy
    world.advance(GRACE_MS + 1)
    assert await world.a.begin_stop(CAM) == 1
    assert await world.a.fence(CAM, 9) is None  # STOPPING
    assert (await world.view()).generation == 1

    assert await world.a.stopped(CAM, 1) is None
    assert await world.a.fence(CAM, 0) == 1  # IDLE without viewers: the current generation


async def test_fence_is_busy_for_idle_camera_with_viewers(world: World) -> None:
    """Viewers but IDLE (metadata lost): a container there is not an orphan."""
    await world.leases.reserve(CAM, SOURCE, "alice")
    await world.client.delete(keys.metadata(CAM))
    assert await world.a.fence(CAM, 4) is None
    assert not await world.client.exists(keys.metadata(CAM))


async def test_fence_label_above_failed_camera_is_refused(world: World) -> None:
    admission = await world.leases.reserve(CAM, SOURCE, "alice")
    assert await world.a.mark_failed(CAM, admission.generation, "boom") is not None
    assert await world.a.fence(CAM, 7) is None
    assert (await world.view()).generation == 1


# --- snapshot -------------------------------------------------------------------------


async def test_snapshot_reads_active_cameras_and_live_counts(world: World) -> None:
    await world.leases.reserve(CAM, SOURCE, "alice")
    await world.leases.reserve(CAM, SOURCE, "bob")
    other = await world.leases.reserve("cam-2", SOURCE, "carol")
    await release_by_id(world.leases, other.reservation_id)

    snapshot = await world.a.snapshot()
    assert set(snapshot.views) == {CAM, "cam-2"}
    assert snapshot.views[CAM].state == "STARTING"
    assert snapshot.views["cam-2"].state == "DRAINING"
    assert snapshot.watched == {CAM: 2}
    assert abs(snapshot.now_ms - await world.now_ms()) < 1_000

    # A camera with viewers but missing from the active set is found only with all_watched.
    await world.client.srem(keys.ACTIVE_CAMERAS, CAM)
    assert CAM not in (await world.a.snapshot()).views
    full = await world.a.snapshot(all_watched=True)
    assert CAM in full.views and full.watched[CAM] == 2


# --- invalid arguments ----------------------------------------------------------------

META = keys.metadata(CAM)
LEASES = keys.camera_leases(CAM)
ACTIVE = keys.ACTIVE_CAMERAS
DELAYS = [1_000, 2_000]

INVALID_CALLS: list[tuple[str, list[str], list[Any], str]] = [
    ("pusher_claim", [META], [0, "A", 1_000, CAM], "keys"),
    ("pusher_claim", [META, LEASES, ACTIVE], [0, "A", 0, CAM], "claim_ms"),
    ("pusher_claim", [META, LEASES, ACTIVE], [0, "", 1_000, CAM], "owner"),
    ("pusher_claim", [META, LEASES, ACTIVE], [0, "A", 1_000, ""], "camera_id"),
    ("pusher_claim", [META, LEASES, ACTIVE], ["1.5", "A", 1_000, CAM], "offset"),
    ("pusher_running", [META, LEASES], [0, 1, "c-1"], "keys"),
    ("pusher_running", [META], [0, 0, "c-1"], "generation"),
    ("pusher_running", [META], [0, 1, ""], "container_id"),
    ("pusher_failed", [META], [0, 1, "", "err", 60_000], "delays"),
    ("pusher_failed", [META], [0, 1, "", "err", 60_000, -1], "delays"),
    ("pusher_failed", [META], [0, "x", "", "err", 60_000, *DELAYS], "generation"),
    ("pusher_failed", [META], [0, 1, "", "err", -5, *DELAYS], "stable_ms"),
    ("pusher_failed", [META, LEASES], [0, 1, "", "err", 60_000, *DELAYS], "keys"),
    ("pusher_stop", [META], [0, "A", 1_000, 0], "keys"),
    ("pusher_stop", [META, LEASES], [0, "", 1_000, 0], "owner"),
    ("pusher_stop", [META, LEASES], [0, "A", 0, 0], "stop_ms"),
    ("pusher_stop", [META, LEASES], [0, "A", 1_000, 2], "force"),
    ("pusher_stopped", [META, LEASES], [0, 1, "A", 1_000, CAM], "keys"),
    ("pusher_stopped", [META, LEASES, ACTIVE], [0, -1, "A", 1_000, CAM], "generation"),
    ("pusher_stopped", [META, LEASES, ACTIVE], [0, 1, "A", 1_000, ""], "camera_id"),
    ("pusher_fence", [META], [0, 1], "keys"),
    ("pusher_fence", [META, LEASES], [0, -1], "generation"),
    ("pusher_placement", [META], [0, 1, "svc-1", "bad node!", ""], "node"),
    ("pusher_placement", [META], [0, 1, "svc-1", "n" * 256, ""], "node"),
    ("pusher_placement", [META], [0, 1, "svc-1", "n", "a\nb"], "waiting"),
    ("pusher_placement", [META], [0, 1, "", "n", ""], "ref"),
    ("pusher_placement", [META, LEASES], [0, 1, "svc-1", "n", ""], "keys"),
]


@pytest.mark.parametrize(
    ("script", "script_keys", "args", "argument"),
    INVALID_CALLS,
    ids=[f"{c[0]}-{c[3]}" for c in INVALID_CALLS],
)
async def test_invalid_script_arguments_raise_invalid_input(
    world: World, script: str, script_keys: list[str], args: list[Any], argument: str
) -> None:
    await world.leases.reserve(CAM, SOURCE, "alice")  # a live camera the call could touch
    before = await world.client.hgetall(META)
    handle = getattr(world.scripts, script)  # each script of the list, by its handle
    reply = await handle(script_keys, args)
    assert reply == ["INVALID", argument]
    with pytest.raises(InvalidInput, match=argument):
        outcome(script, reply)
    assert await world.client.hgetall(META) == before


async def test_wrapper_with_invalid_arguments_raises_invalid_input(world: World) -> None:
    await world.leases.reserve(CAM, SOURCE, "alice")
    with pytest.raises(InvalidInput):
        await world.a.mark_running(CAM, 1, "")
    broken = PusherStore(
        world.client, world.scripts, owner="", claim_ms=CLAIM_MS, restart=RestartPolicy()
    )
    with pytest.raises(InvalidInput):
        await broken.begin_stop(CAM)
    no_claim = PusherStore(
        world.client, world.scripts, owner="C", claim_ms=0, restart=RestartPolicy()
    )
    with pytest.raises(InvalidInput):
        await no_claim.claim(CAM)
    assert (await world.view()).state == "STARTING"
