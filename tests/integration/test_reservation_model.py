"""Stateful model test of the reservation engine against a real Valkey.

A Hypothesis ``RuleBasedStateMachine`` drives reserve / heartbeat / release / release-twice /
advance-time / expire / recount / flush-script-cache and checks invariants 1-3 and 6
(docs/architecture.md) after every step. Time is virtual: before each call the store's clock
offset is set so the server clock reads the model's ``now``. Leases last 60.5 s and time moves
in whole seconds, so no check ever lands within 0.5 s of an expiry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from orchestrator.errors import QuotaExceeded, ReservationNotFound
from orchestrator.store import keys
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.embedded import EmbeddedValkey
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from tests.harness.store import add_cameras, heartbeat_by_id, release_by_id

CAMERAS = ("cam-a", "cam-b", "cam-c")
MODEL_LIMITS = {"ALPHA": 3, "BETA": 2, "TOTAL": 4}
SOURCES = ("ALPHA", "BETA")
LEASE_MS = 60_500


@dataclass
class ModelLease:
    camera_id: str
    source: str
    expires_at_ms: int


class ReservationMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self, url: str) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.client = connect(url, timeout_seconds=5.0)
        policy = LeasePolicy(
            lease_ms=LEASE_MS,
            drain_grace_ms=3_000,
            claim_ms=30_000,
            default_limits=tuple(MODEL_LIMITS.items()),
        )
        self.store = ReservationStore(self.client, Scripts(self.client), policy, owner="model")
        self.now_ms = int(time.time() * 1000)
        self.leases: dict[str, ModelLease] = {}
        self.run(self.client.flushall())
        self.run(add_cameras(CameraRegistry(self.client), *CAMERAS))

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def call(self, coro_factory: Any) -> Any:
        """Run one store call with the server clock pinned to the model's now."""
        self.store.clock_offset_ms = self.now_ms - int(time.time() * 1000)
        return self.run(coro_factory())

    def live(self, **match: str) -> dict[str, ModelLease]:
        return {
            rid: lease
            for rid, lease in self.leases.items()
            if lease.expires_at_ms > self.now_ms
            and all(getattr(lease, k) == v for k, v in match.items())
        }

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.runner.close()

    # --- rules ---------------------------------------------------------------------------

    @rule(target=reservations, camera_id=st.sampled_from(CAMERAS), source=st.sampled_from(SOURCES))
    def reserve(self, camera_id: str, source: str) -> Any:
        used, total = len(self.live(source=source)), len(self.live())
        try:
            admission = self.call(lambda: self.store.reserve(camera_id, source, "user"))
        except QuotaExceeded as refusal:
            if used >= MODEL_LIMITS[source]:
                assert (refusal.scope, refusal.current, refusal.limit) == (
                    "SOURCE",
                    used,
                    MODEL_LIMITS[source],
                )
            else:
                assert total >= MODEL_LIMITS["TOTAL"]
                assert (refusal.scope, refusal.current, refusal.limit) == (
                    "TOTAL",
                    total,
                    MODEL_LIMITS["TOTAL"],
                )
            return multiple()
        assert used < MODEL_LIMITS[source] and total < MODEL_LIMITS["TOTAL"], (
            "admitted over a limit"
        )
        assert admission.current_usage == used + 1
        assert admission.expires_at_ms >= self.now_ms + LEASE_MS
        self.leases[admission.reservation_id] = ModelLease(
            camera_id, source, admission.expires_at_ms
        )
        return admission.reservation_id

    @rule(rid=reservations)
    def heartbeat(self, rid: str) -> None:
        lease = self.leases.get(rid)
        try:
            expires = self.call(lambda: heartbeat_by_id(self.store, rid))
        except ReservationNotFound:
            assert lease is None or lease.expires_at_ms <= self.now_ms
            return
        assert lease is not None and lease.expires_at_ms > self.now_ms
        assert expires >= lease.expires_at_ms, "heartbeat shortened a lease"
        assert expires >= self.now_ms + LEASE_MS
        lease.expires_at_ms = expires

    @rule(rid=reservations)
    def release(self, rid: str) -> None:
        result = self.call(lambda: release_by_id(self.store, rid))
        assert result.released == (rid in self.leases)
        self.leases.pop(rid, None)

    @rule(rid=consumes(reservations))
    def release_twice(self, rid: str) -> None:
        known = rid in self.leases
        counts = self.counters()
        first = self.call(lambda: release_by_id(self.store, rid))
        after_first = self.counters()
        second = self.call(lambda: release_by_id(self.store, rid))
        assert first.released == known and not second.released
        assert self.counters() == after_first, "a second release changed a count"
        if known:
            source = self.leases.pop(rid).source
            assert after_first[source] <= counts[source]

    @rule(seconds=st.sampled_from([1, 5, 30, 61]))
    def advance_time(self, seconds: int) -> None:
        self.now_ms += seconds * 1000

    @rule()
    def expire(self) -> None:
        gone = {
            rid: lease for rid, lease in self.leases.items() if lease not in self.live().values()
        }
        report = self.call(lambda: self.store.expire_all(batch=2))
        assert report.expired == len(gone)
        for rid in gone:
            del self.leases[rid]
        touched = {lease.camera_id for lease in gone.values()}
        assert set(report.emptied_cameras) == {c for c in touched if not self.live(camera_id=c)}
        assert self.counters() == {s: len(self.live(source=s)) for s in SOURCES}

    @rule(source=st.sampled_from(SOURCES))
    def recount(self, source: str) -> None:
        result = self.call(lambda: self.store.recount(source))
        assert result.after == len(self.live(source=source))

    @rule()
    def flush_script_cache(self) -> None:
        self.run(self.client.script_flush())

    # --- invariants ----------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        values = self.run(self.client.mget([keys.count(s) for s in SOURCES]))
        return {s: int(v or 0) for s, v in zip(SOURCES, values, strict=True)}

    @invariant()
    def counts_match_live_leases(self) -> None:
        """Invariants 1 and 2: counters are the live leases, never negative or over a limit."""
        counters = self.counters()
        now = self.now_ms
        for source in SOURCES:
            members = self.run(self.client.zrange(keys.source_leases(source), 0, -1))
            live = self.run(self.client.zcount(keys.source_leases(source), f"({now}", "+inf"))
            assert counters[source] == len(members), "counter differs from its lease set"
            assert live == len(self.live(source=source))
            assert 0 <= counters[source] <= MODEL_LIMITS[source]
        total_live = self.run(self.client.zcount(keys.ALL_LEASES, f"({now}", "+inf"))
        assert total_live == len(self.live()) <= MODEL_LIMITS["TOTAL"]

    @invariant()
    def camera_viewers_are_live_reservations(self) -> None:
        """Invariant 3: a camera's viewer set is the live reservations of that camera."""
        for camera_id in CAMERAS:
            members = self.run(
                self.client.zrange(
                    keys.camera_leases(camera_id), f"({self.now_ms}", "+inf", byscore=True
                )
            )
            assert {m.split("|")[0] for m in members} == set(self.live(camera_id=camera_id))
            for rid in self.live(camera_id=camera_id):
                assert self.run(self.client.hget(keys.reservation(rid), "camera_id")) == camera_id


def test_reservation_engine_model(valkey_server: EmbeddedValkey) -> None:
    class Machine(ReservationMachine):
        def __init__(self) -> None:
            super().__init__(valkey_server.url)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=200,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
