"""Pure pusher logic: the reconcile plan, the tick's due checks, the restart delay table."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.backoff import TABLE_SIZE, RestartPolicy
from orchestrator.domain.containers import Phase, Workload
from orchestrator.domain.pusher import PusherView, Snapshot, due_for_start, due_for_stop
from orchestrator.pusher.placement import Verdict, judge_holder, may_remove
from orchestrator.reconcile.plan import Correction, plan
from orchestrator.runtime.parsing import phase_of

NOW = 1_700_000_000_000
STATES = ("IDLE", "STARTING", "RUNNING", "DRAINING", "STOPPING", "FAILED")


def view(
    camera_id: str,
    state: str = "IDLE",
    *,
    generation: int = 1,
    container_id: str | None = None,
    claim_deadline_ms: int | None = None,
    drain_deadline_ms: int | None = None,
    retry_at_ms: int | None = None,
    resume: str | None = None,
) -> PusherView:
    return PusherView(
        camera_id=camera_id,
        state=state,
        generation=generation,
        container_id=container_id,
        claim_deadline_ms=claim_deadline_ms,
        drain_deadline_ms=drain_deadline_ms,
        retry_at_ms=retry_at_ms,
        attempts=0,
        restarts=0,
        last_error=None,
        resume=resume,
    )


def container(
    camera_id: str | None,
    cid: str,
    *,
    generation: int | None = 1,
    status: str = "running",
    managed: bool = True,
) -> Workload:
    phase = phase_of(status)  # Docker's words: running, exited, dead, created
    return Workload(
        ref=cid,
        name=f"whip-pusher-{camera_id or 'x'}",
        camera_id=camera_id,
        generation=generation,
        phase=phase,
        managed=managed,
        exit_code=137 if phase in ("EXITED", "LOST") else None,
        engine_state=status,
    )


def snap(*views: PusherView, watched: dict[str, int] | None = None) -> Snapshot:
    return Snapshot(views={v.camera_id: v for v in views}, watched=watched or {}, now_ms=NOW)


def kinds(corrections: list[Correction]) -> list[tuple[str, str]]:
    return [(c.kind, c.camera_id) for c in corrections]


# --- plan: orphans --------------------------------------------------------------------


def test_container_of_idle_camera_without_viewers_is_an_orphan() -> None:
    listing = [container("cam-1", "c-1", generation=4)]
    assert plan(listing, snap(view("cam-1", generation=3)), trust_empty=False) == [
        Correction("orphan", "cam-1", "c-1", 4)
    ]
    # No metadata at all counts as IDLE; a container without a generation label fences at 0.
    listing = [container("cam-2", "c-2", generation=None)]
    assert plan(listing, snap(), trust_empty=False) == [Correction("orphan", "cam-2", "c-2", 0)]


def test_idle_camera_with_viewers_is_started_not_orphaned() -> None:
    listing = [container("cam-1", "c-1")]
    corrections = plan(listing, snap(view("cam-1"), watched={"cam-1": 1}), trust_empty=False)
    assert kinds(corrections) == [("start", "cam-1")]


@pytest.mark.parametrize("state", [s for s in STATES if s != "IDLE"])
def test_container_of_busy_camera_is_never_an_orphan(state: str) -> None:
    listing = [container("cam-1", "c-1")]
    resume = "RUNNING" if state == "DRAINING" else None
    recorded = "c-1" if state in ("RUNNING", "DRAINING", "STOPPING") else None
    snapshot = snap(view("cam-1", state, container_id=recorded, resume=resume))
    assert plan(listing, snapshot, trust_empty=False) == []
    assert plan(listing, snap(view("cam-1", state, resume=resume)), trust_empty=True) == []


def test_unmanaged_containers_are_ignored() -> None:
    listing = [
        container("cam-1", "c-foreign", managed=False, generation=None),
        container(None, "c-other", managed=False, generation=None),
        container(None, "c-unlabelled"),  # managed but without a camera label
    ]
    assert plan(listing, snap(view("cam-1")), trust_empty=False) == []
    assert plan(listing, snap(), trust_empty=True) == []


# --- plan: dead and missing -----------------------------------------------------------


def test_running_camera_whose_container_exited_is_dead() -> None:
    listing = [container("cam-1", "c-1", generation=2, status="exited")]
    snapshot = snap(view("cam-1", "RUNNING", generation=2, container_id="c-1"))
    corrections = plan(listing, snapshot, trust_empty=False)
    assert [(c.kind, c.camera_id, c.container_id, c.generation) for c in corrections] == [
        ("dead", "cam-1", "c-1", 2)
    ]
    assert "exited" in corrections[0].reason and "137" in corrections[0].reason


def test_draining_camera_that_was_running_is_checked_like_running() -> None:
    listing = [container("cam-1", "c-1", status="exited")]
    snapshot = snap(view("cam-1", "DRAINING", container_id="c-1", resume="RUNNING"))
    assert kinds(plan(listing, snapshot, trust_empty=False)) == [("dead", "cam-1")]


def test_running_camera_with_running_container_needs_nothing() -> None:
    listing = [container("cam-1", "c-1")]
    snapshot = snap(view("cam-1", "RUNNING", container_id="c-1"), watched={"cam-1": 3})
    assert plan(listing, snapshot, trust_empty=False) == []


def test_a_container_listed_mid_start_is_not_dead() -> None:
    """A listing taken between another replica's create and start shows ``created`` while the
    state already says RUNNING (seen in the 300-viewer race): not a death, no restart."""
    listing = [container("cam-1", "c-1", status="created")]
    snapshot = snap(view("cam-1", "RUNNING", container_id="c-1"), watched={"cam-1": 3})
    assert plan(listing, snapshot, trust_empty=False) == []


@pytest.mark.parametrize(
    ("statuses", "dead"),
    [
        (("exited", "running"), ["cam-a"]),
        (("running", "exited"), ["cam-b"]),
        (("exited", "exited"), ["cam-a", "cam-b"]),
        (("running", "running"), []),
    ],
)
def test_dead_is_judged_on_each_cameras_own_container(
    statuses: tuple[str, str], dead: list[str]
) -> None:
    listing = [
        container("cam-a", "c-a", status=statuses[0]),
        container("cam-b", "c-b", status=statuses[1]),
    ]
    snapshot = snap(
        view("cam-a", "RUNNING", container_id="c-a"),
        view("cam-b", "RUNNING", container_id="c-b"),
        watched={"cam-a": 1, "cam-b": 1},
    )
    corrections = plan(listing, snapshot, trust_empty=False)
    assert [(c.kind, c.camera_id, c.container_id) for c in corrections] == [
        ("dead", camera_id, f"c-{camera_id[-1]}") for camera_id in dead
    ]


def test_running_camera_absent_from_a_non_empty_listing_is_missing() -> None:
    listing = [container("cam-2", "c-2")]
    snapshot = snap(
        view("cam-1", "RUNNING", generation=5, container_id="c-1"),
        view("cam-2", "RUNNING", container_id="c-2"),
    )
    corrections = plan(listing, snapshot, trust_empty=False)
    assert [(c.kind, c.camera_id, c.container_id, c.generation) for c in corrections] == [
        ("missing", "cam-1", "c-1", 5)
    ]


def test_running_camera_whose_container_was_replaced_is_missing() -> None:
    listing = [container("cam-1", "c-new")]
    snapshot = snap(view("cam-1", "RUNNING", container_id="c-old"))
    assert kinds(plan(listing, snapshot, trust_empty=False)) == [("missing", "cam-1")]


def test_empty_listing_is_trusted_only_when_told() -> None:
    snapshot = snap(view("cam-1", "RUNNING", container_id="c-1"), watched={"cam-1": 1})
    assert plan([], snapshot, trust_empty=False) == []
    assert kinds(plan([], snapshot, trust_empty=True)) == [("missing", "cam-1")]


@pytest.mark.parametrize("state", ["STARTING", "FAILED", "STOPPING", "IDLE"])
def test_only_a_running_phase_can_lose_its_container(state: str) -> None:
    snapshot = snap(view("cam-1", state, container_id="c-1"), watched={"cam-1": 1})
    assert [c for c in plan([], snapshot, trust_empty=True) if c.kind == "missing"] == []


# --- plan: start ----------------------------------------------------------------------


def test_camera_with_viewers_and_no_pusher_is_started() -> None:
    assert kinds(plan([], snap(watched={"cam-1": 2}), trust_empty=False)) == [("start", "cam-1")]
    snapshot = snap(view("cam-1"), watched={"cam-1": 1})
    assert kinds(plan([], snapshot, trust_empty=False)) == [("start", "cam-1")]


@pytest.mark.parametrize("state", [s for s in STATES if s != "IDLE"])
def test_camera_with_a_pusher_state_is_not_started_by_the_plan(state: str) -> None:
    snapshot = snap(view("cam-1", state), watched={"cam-1": 1})
    assert [c for c in plan([], snapshot, trust_empty=False) if c.kind == "start"] == []


def test_idle_camera_without_viewers_needs_nothing() -> None:
    assert plan([], snap(view("cam-1")), trust_empty=True) == []


# --- plan: applying it and planning again changes nothing -----------------------------


def apply(
    corrections: list[Correction], listing: list[Workload], snapshot: Snapshot
) -> tuple[list[Workload], Snapshot]:
    """What the reconciler's corrections do, modelled on the listing and the snapshot."""
    views = dict(snapshot.views)
    for c in corrections:
        current = views.get(c.camera_id) or view(c.camera_id, generation=0)
        if c.kind == "orphan":  # fence (raise the generation), then remove the container
            views[c.camera_id] = dataclasses.replace(
                current, generation=max(current.generation, c.generation)
            )
            listing = [x for x in listing if x.camera_id != c.camera_id]
        elif c.kind in ("dead", "missing"):  # pusher_failed: FAILED with a retry time
            failed = dataclasses.replace(current, container_id=None, retry_at_ms=NOW + 1_000)
            if current.state == "DRAINING":
                failed = dataclasses.replace(failed, resume="FAILED")
            else:
                failed = dataclasses.replace(failed, state="FAILED")
            views[c.camera_id] = failed
        elif c.kind == "start":  # pusher_claim: STARTING with the next generation
            views[c.camera_id] = dataclasses.replace(
                current,
                state="STARTING",
                generation=current.generation + 1,
                claim_deadline_ms=NOW + 30_000,
            )
        else:  # pragma: no cover - plan() names no other kind
            raise AssertionError(c.kind)
    return listing, Snapshot(views=views, watched=snapshot.watched, now_ms=snapshot.now_ms)


def test_plan_applied_then_planned_again_is_empty() -> None:
    listing = [
        container("orphan", "c-orphan", generation=7),
        container("dead", "c-dead", status="exited"),
        container("fine", "c-fine"),
        container("watched-idle", "c-wi"),
        container("foreign", "c-foreign", managed=False, generation=None),
    ]
    snapshot = snap(
        view("orphan", generation=2),
        view("dead", "RUNNING", container_id="c-dead"),
        view("missing", "RUNNING", container_id="c-missing"),
        view("fine", "RUNNING", container_id="c-fine"),
        view("drained", "DRAINING", container_id="c-gone", resume="RUNNING"),
        view("watched-idle"),
        watched={"dead": 1, "missing": 1, "fine": 1, "new": 2, "watched-idle": 1},
    )
    first = plan(listing, snapshot, trust_empty=False)
    listing2, snapshot2 = apply(first, listing, snapshot)
    assert plan(listing2, snapshot2, trust_empty=False) == []
    assert plan(listing2, snapshot2, trust_empty=True) == []
    assert snapshot2.views["orphan"].generation == 7
    assert sorted(kinds(first)) == [
        ("dead", "dead"),
        ("missing", "drained"),
        ("missing", "missing"),
        ("orphan", "orphan"),
        ("start", "new"),
        ("start", "watched-idle"),
    ]


CAMERA_IDS = ("cam-a", "cam-b", "cam-c", "cam-d")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Workload], Snapshot, bool]:
    views: list[PusherView] = []
    listing: list[Workload] = []
    watched: dict[str, int] = {}
    for camera_id in CAMERA_IDS:
        state = draw(st.sampled_from((None, *STATES)))
        recorded = draw(st.sampled_from((None, f"{camera_id}-1", f"{camera_id}-2")))
        if state is not None:
            resume = draw(st.sampled_from(("STARTING", "RUNNING", "FAILED")))
            views.append(
                view(
                    camera_id,
                    state,
                    generation=draw(st.integers(0, 5)),
                    container_id=recorded,
                    resume=resume if state == "DRAINING" else None,
                )
            )
        live = draw(st.integers(0, 2))
        if live:
            watched[camera_id] = live
        if draw(st.booleans()):
            listing.append(
                container(
                    camera_id,
                    draw(st.sampled_from((f"{camera_id}-1", f"{camera_id}-2"))),
                    generation=draw(st.one_of(st.none(), st.integers(0, 6))),
                    status=draw(st.sampled_from(("running", "exited", "created"))),
                    managed=draw(st.booleans()),
                )
            )
    snapshot = Snapshot(views={v.camera_id: v for v in views}, watched=watched, now_ms=NOW)
    return listing, snapshot, draw(st.booleans())


@given(worlds())
def test_plan_is_idempotent_for_any_world(
    world: tuple[list[Workload], Snapshot, bool],
) -> None:
    listing, snapshot, trust_empty = world
    first = plan(listing, snapshot, trust_empty=trust_empty)
    assert len({(c.kind, c.camera_id) for c in first}) == len(first)
    listing2, snapshot2 = apply(first, listing, snapshot)
    assert plan(listing2, snapshot2, trust_empty=trust_empty) == []


# --- the tick's due checks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pusher", "live", "due"),
    [
        (view("c", "DRAINING", drain_deadline_ms=NOW + 1), 0, False),
        (view("c", "DRAINING", drain_deadline_ms=NOW), 0, True),
        (view("c", "DRAINING", drain_deadline_ms=NOW - 1), 0, True),
        (view("c", "DRAINING", drain_deadline_ms=NOW - 1), 1, False),
        (view("c", "DRAINING"), 0, True),
        (view("c", "STOPPING", claim_deadline_ms=NOW + 1), 0, False),
        (view("c", "STOPPING", claim_deadline_ms=NOW), 0, True),
        (view("c", "STOPPING", claim_deadline_ms=NOW - 1), 2, False),
        (view("c", "IDLE"), 0, False),
        (view("c", "RUNNING"), 0, False),
        (view("c", "STARTING", claim_deadline_ms=NOW - 1), 0, False),
        (view("c", "FAILED", retry_at_ms=NOW - 1), 0, False),
    ],
)
def test_due_for_stop(pusher: PusherView, live: int, due: bool) -> None:
    assert due_for_stop(pusher, live, NOW) is due


@pytest.mark.parametrize(
    ("pusher", "live", "due"),
    [
        (view("c", "IDLE"), 1, True),
        (view("c", "IDLE"), 0, False),
        (view("c", "FAILED", retry_at_ms=NOW + 1), 1, False),
        (view("c", "FAILED", retry_at_ms=NOW), 1, True),
        (view("c", "FAILED", retry_at_ms=NOW - 1), 0, False),
        (view("c", "STARTING", claim_deadline_ms=NOW + 1), 1, False),
        (view("c", "STARTING", claim_deadline_ms=NOW), 1, True),
        (view("c", "STOPPING", claim_deadline_ms=NOW + 1), 1, False),
        (view("c", "STOPPING", claim_deadline_ms=NOW - 1), 1, True),
        (view("c", "RUNNING"), 1, False),
        (view("c", "DRAINING", drain_deadline_ms=NOW - 1), 1, False),
    ],
)
def test_due_for_start(pusher: PusherView, live: int, due: bool) -> None:
    assert due_for_start(pusher, live, NOW) is due


@pytest.mark.parametrize("state", STATES)
def test_never_due_for_both(state: str) -> None:
    for live in (0, 1):
        for deadline in (NOW - 1, NOW + 1):
            pusher = view(
                "c",
                state,
                claim_deadline_ms=deadline,
                drain_deadline_ms=deadline,
                retry_at_ms=deadline,
            )
            assert not (due_for_stop(pusher, live, NOW) and due_for_start(pusher, live, NOW))


# --- restart delays -------------------------------------------------------------------


def test_default_delays_start_near_one_second_and_grow_to_the_cap() -> None:
    policy = RestartPolicy()
    for _ in range(200):
        delays = policy.delays_ms()
        assert len(delays) == TABLE_SIZE
        assert 1_000 <= delays[0] <= 2_000
        assert all(a <= b for a, b in itertools.pairwise(delays))
        assert all(0 < d <= 60_000 for d in delays)
        for attempt, delay in enumerate(delays, start=1):
            base = min(1_000 * 2 ** (attempt - 1), 60_000)
            assert base <= delay <= min(base + 1_000, 60_000)
        assert delays[-1] == 60_000


def test_custom_cap_is_never_exceeded() -> None:
    policy = RestartPolicy(max_seconds=5.0)
    for _ in range(50):
        delays = policy.delays_ms()
        assert all(d <= 5_000 for d in delays)
        assert all(a <= b for a, b in itertools.pairwise(delays))
        assert delays[-1] == 5_000


def test_custom_initial_delay_without_jitter_is_exact() -> None:
    """``CCTV_RESTART_INITIAL_SECONDS`` is a setting (wiring.restart_policy passes it)."""
    policy = RestartPolicy(initial_seconds=0.5, max_seconds=5.0, jitter_seconds=0.0)
    assert policy.delays_ms() == [500, 1_000, 2_000, 4_000] + [5_000] * (TABLE_SIZE - 4)


def test_a_holder_labelled_for_another_camera_is_never_adopted_nor_removed() -> None:
    def holder(camera_id: str, instance: str = "blue") -> Workload:
        return Workload("r1", "whip-pusher-x", camera_id, 1, Phase.RUNNING, True, instance)

    assert judge_holder(holder("cam1"), "cam1", 2, "blue") is Verdict.ADOPT
    assert judge_holder(holder("CAM1"), "cam1", 2, "blue") is Verdict.FOREIGN  # one folded name
    assert judge_holder(holder("cam1", "green"), "cam1", 2, "blue") is Verdict.FOREIGN
    assert may_remove(holder("cam1"), "cam1", 2, "blue")
    assert not may_remove(holder("CAM1"), "cam1", 2, "blue")
