"""Two replicas whose clocks are 30 s apart report the same live leases (issue 20, "one
clock"). Replica B runs under libfaketime (Debian's ``faketime``, installed by ``make tools``),
so *every* read of its wall clock is 30 s ahead, whichever code path makes it; its monotonic
clock is left alone. Leases last 20 s here: a replica deciding liveness by its own clock would
count every lease as expired. Both replicas take reservations and heartbeats; both report the
same live leases in ``/stream/stats``, in one camera's stats and in the ``/metrics`` gauges."""

from __future__ import annotations

from datetime import datetime
from email import utils as email_utils
from pathlib import Path

import httpx
from redis.asyncio import Redis

from orchestrator.store.cameras import CameraRegistry
from tests.harness.constants import ADMIN_KEY
from tests.harness.http import admit, auth
from tests.harness.service import NewService
from tests.harness.store import add_cameras

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
AHEAD_S = 30
LEASE_S = 20  # shorter than the skew: a local-clock reader sees none of them live
SKEWED = {
    "LD_PRELOAD": str(LIBFAKETIME),
    "FAKETIME": f"+{AHEAD_S}s",
    "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    "CCTV_LEASE_SECONDS": str(LEASE_S),
}


def live(stats: dict[str, object]) -> dict[str, tuple[int, dict[str, int]]]:
    cameras = stats["camera_stats"]
    assert isinstance(cameras, list)
    return {c["camera_id"]: (c["reserved_count"], c["viewers_by_source"]) for c in cameras}


def gauge(metrics: str, source: str) -> float:
    prefix = f'cctv_reservations_active{{source="{source}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    raise AssertionError(f"no cctv_reservations_active for {source}")


async def wall_clock(http: httpx.AsyncClient) -> float:
    """The replica's wall clock as its HTTP Date header tells it (seconds, whole)."""
    response = await http.get("/health")
    return float(email_utils.parsedate_to_datetime(response.headers["date"]).timestamp())


async def test_replicas_30_s_apart_report_the_same_live_leases(
    client: Redis, new_service: NewService
) -> None:
    assert LIBFAKETIME.exists(), f"{LIBFAKETIME} is missing: run `make tools` (faketime)"
    await add_cameras(CameraRegistry(client), "cam-skew-1", "cam-skew-2")
    async with (
        new_service("honest", CCTV_LEASE_SECONDS=str(LEASE_S)) as a,
        new_service("skewed", **SKEWED) as b,
    ):
        skew = await wall_clock(b.http) - await wall_clock(a.http)
        assert AHEAD_S - 3 <= skew <= AHEAD_S + 3, f"replica B's clock is {skew:.0f} s ahead"
        via_a = [await admit(a.http, "cam-skew-1", "METRO") for _ in range(2)]
        via_b = [await admit(b.http, "cam-skew-1", "BUS"), await admit(b.http, "cam-skew-2", "BUS")]
        renewals = [(b, r) for r in via_a] + [(a, r) for r in via_b]  # through the other one
        for other, reservation in renewals:
            rid = reservation["reservation_id"]
            renewed = await other.http.post(
                f"/api/v1/stream/heartbeat/{rid}", headers=auth(ADMIN_KEY)
            )
            assert renewed.status_code == 200, renewed.text

        seen_a = (await a.http.get("/api/v1/stream/stats")).json()
        seen_b = (await b.http.get("/api/v1/stream/stats")).json()
        expected = {"cam-skew-1": (3, {"METRO": 2, "BUS": 1}), "cam-skew-2": (1, {"BUS": 1})}
        assert live(seen_a) == live(seen_b) == expected
        assert seen_a["total_reserved"] == seen_b["total_reserved"] == 4
        assert seen_a["source_stats"] == seen_b["source_stats"]
        stamp_gap = abs(_seconds(seen_a["timestamp"]) - _seconds(seen_b["timestamp"]))
        assert stamp_gap < AHEAD_S / 2, "a replica stamped stats with its own clock"

        one_a = (await a.http.get("/api/v1/stream/stats/cam-skew-1")).json()
        one_b = (await b.http.get("/api/v1/stream/stats/cam-skew-1")).json()
        assert one_a["reserved_count"] == one_b["reserved_count"] == 3

        metrics_a = (await a.http.get("/metrics")).text
        metrics_b = (await b.http.get("/metrics")).text
        for source, count in (("METRO", 2), ("BUS", 2)):
            assert gauge(metrics_a, source) == gauge(metrics_b, source) == count


def _seconds(stamp: object) -> float:
    assert isinstance(stamp, str)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
