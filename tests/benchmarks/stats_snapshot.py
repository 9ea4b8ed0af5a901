"""Stats at city scale: the shared snapshot under many pollers, its cost as cameras grow, and
one camera's read, as ratios to floors measured in the same run.

    python -m tests.benchmarks.stats_snapshot [--seconds 30] [--pollers 16] [--scales 100 1000 5000]

Everything is real: an embedded Valkey, the service (``serve``) as a separate process with the
default snapshot age (``CCTV_STATS_MAX_AGE_SECONDS`` 0.5), and keep-alive HTTP/1.1 pollers on
uvloop in this process. Each camera holds 10 live leases (1,000 cameras: 10,000 leases).

1. **The floor**: ``json.dumps`` of the same payload (the parsed body) in this process, the
   least any server spends producing that body.
2. **A fresh snapshot**, computed in this process as a replica does (``StatsReader.read`` and
   ``StatsBodies.body``): *cold* with a new reader (no key tracking) and renderer each time
   (every camera read, parsed and serialized), and *steady* with the same tracked reader and
   renderer while 1 % of the cameras change between reads (what a replica does every 0.5 s:
   Valkey is asked for the changed cameras only).
3. **Pollers**: ``--pollers`` clients each polling back to back for ``--seconds`` while a
   writer reserves and releases on 10 cameras (about 20 changes a second), so snapshots keep
   changing. Plain GETs, then conditional ones (``If-None-Match`` with the last ``ETag``, as a
   browser revalidates). Their p50/p99, and the reads the service made (its own metric).
4. **Growth**: the cold snapshot at each of ``--scales`` cameras, each scale in a Valkey
   database of its own, measured in alternating rounds (the machine's load drifts); the
   ratio t(5,000) / t(1,000) of the medians.
5. **One camera**: ``GET /api/v1/stream/stats/{camera_id}`` with 10 active cameras and then
   with 5,000 (the same service, the same camera, 300 reads each); p50 ratio.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

from orchestrator.api.stats_body import StatsBodies
from orchestrator.stats_snapshot import Snapshot
from orchestrator.store.changes import ChangedKeys
from orchestrator.store.client import connect
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from orchestrator.store.stats import CAMERA_PREFIXES, StatsReader
from tests.benchmarks.http_api import BENCH_LIMITS, bench_service
from tests.benchmarks.rawhttp import RawConnection, build
from tests.benchmarks.stats import percentile, run_on_valkey, script_parser
from tests.harness.store import register_cameras

LEASES_PER_CAMERA = 10
STATS = "/api/v1/stream/stats"


def camera_ids(n: int) -> list[str]:
    return [f"stat-{i}" for i in range(n)]


def median_ms(samples_s: list[float]) -> float:
    return statistics.median(samples_s) * 1000


async def timed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    samples: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return samples


class Lab:
    def __init__(self, valkey_url: str) -> None:
        self.valkey_url = valkey_url
        self.client = connect(valkey_url, timeout_seconds=30.0)
        self.scripts = Scripts(self.client)
        self.policy = LeasePolicy(lease_ms=3_600_000, default_limits=tuple(BENCH_LIMITS.items()))
        self.store = ReservationStore(self.client, self.scripts, self.policy, owner="bench")
        self.seeded = 0
        self.tracking: list[ChangedKeys] = []

    async def seed_to(self, cameras: int) -> None:
        """Cameras ``stat-<seeded>`` up to ``stat-<cameras - 1>``, 10 live leases each."""
        ids = camera_ids(cameras)[self.seeded :]
        if not ids:
            return
        await register_cameras(self.valkey_url, *ids)
        todo = [c for c in ids for _ in range(LEASES_PER_CAMERA)]
        for start in range(0, len(todo), 500):
            batch = todo[start : start + 500]
            await asyncio.gather(*(self.store.reserve(c, "BENCH", "u") for c in batch))
        self.seeded = cameras

    def reader(self) -> StatsReader:
        """A replica's reader: key tracking tells it which cameras to read again."""
        changes = ChangedKeys(self.client, CAMERA_PREFIXES, timeout_seconds=5.0)
        self.tracking.append(changes)
        return StatsReader(self.client, self.scripts, self.policy, changes=changes)

    async def aclose(self) -> None:
        for changes in self.tracking:
            await changes.aclose()
        await self.client.aclose()

    async def fresh_snapshot(self, reader: StatsReader, bodies: StatsBodies) -> bytes:
        snapshot = Snapshot(await reader.read(), time.monotonic())
        return (await bodies.body(snapshot)).with_age(0)

    async def cold(self, runs: int) -> list[float]:
        async def once() -> None:
            await self.fresh_snapshot(
                StatsReader(self.client, self.scripts, self.policy), StatsBodies()
            )

        await once()
        return await timed(once, runs)

    async def churn(self, cameras: list[str]) -> None:
        """One reserve and one release on each of ``cameras``: their rows change."""
        for camera in cameras:
            admission = await self.store.reserve(camera, "BENCH", "churn")
            lease = await self.store.lease_of(admission.reservation_id)
            assert lease is not None
            await self.store.release_lease(lease)
            await self.store.reserve(camera, "BENCH", "churn")

    async def steady(self, runs: int, cameras: int) -> list[float]:
        reader, bodies = self.reader(), StatsBodies()
        await self.fresh_snapshot(reader, bodies)
        samples: list[float] = []
        for _ in range(runs):
            await self.churn(random.sample(camera_ids(cameras), max(1, cameras // 100)))
            t0 = time.perf_counter()
            await self.fresh_snapshot(reader, bodies)
            samples.append(time.perf_counter() - t0)
        return samples


def dumps_floor(body: bytes, runs: int = 50) -> float:
    payload = json.loads(body)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@dataclass
class Polled:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


async def poll(url: str, pollers: int, seconds: float, conditional: bool) -> Polled:
    host = url.removeprefix("http://")
    hostname, _, port = host.partition(":")
    polled = Polled()
    deadline = time.monotonic() + seconds

    async def poller() -> None:
        connection = await RawConnection.open(hostname, int(port))
        etag = b""
        try:
            while time.monotonic() < deadline:
                headers = {"If-None-Match": etag.decode()} if conditional and etag else {}
                t0 = time.perf_counter()
                status, head, _ = await connection.exchange(build("GET", STATS, host, headers))
                polled.latencies.append(time.perf_counter() - t0)
                polled.statuses[status] = polled.statuses.get(status, 0) + 1
                etag = head.get(b"etag", etag)
        finally:
            await connection.close()

    await asyncio.gather(*(poller() for _ in range(pollers)))
    return polled


def service_reads(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("cctv_stats_read_seconds_count"):
            return float(line.split()[-1])
    raise AssertionError("the service has no cctv_stats_read_seconds metric")


async def writer(lab: Lab, stop: asyncio.Event) -> None:
    cameras = camera_ids(10)
    while not stop.is_set():
        await lab.churn([random.choice(cameras)])
        await asyncio.sleep(0.1)


async def camera_reads(url: str, camera_id: str, runs: int) -> list[float]:
    host = url.removeprefix("http://")
    hostname, _, port = host.partition(":")
    connection = await RawConnection.open(hostname, int(port))
    raw = build("GET", f"{STATS}/{camera_id}", host, {})
    try:
        for _ in range(20):
            await connection.request(raw)
        samples: list[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            status, body = await connection.request(raw)
            samples.append(time.perf_counter() - t0)
            assert status == 200, body
        return samples
    finally:
        await connection.close()


async def run(valkey_url: str, tmp: Path, seconds: float, pollers: int, scales: list[int]) -> None:
    lab = Lab(valkey_url)
    service = bench_service(valkey_url, tmp, CCTV_STATS_MAX_AGE_SECONDS="0.5")
    async with service:
        await lab.seed_to(10)  # 5. one camera, while only 10 are active
        small = await camera_reads(service.url, "stat-3", 300)

        await lab.seed_to(1000)
        body = await lab.fresh_snapshot(lab.reader(), StatsBodies())
        floor_ms = dumps_floor(body) * 1000
        print(f"payload: 1,000 cameras, 10,000 leases, {len(body) // 1024} KiB")
        print(f"1. floor: json.dumps of the payload, p50 {floor_ms:.2f} ms")
        cold = median_ms(await lab.cold(20))
        steady = median_ms(await lab.steady(20, 1000))
        print(
            f"2. fresh snapshot, cold (every camera parsed and serialized): p50 {cold:.2f} ms "
            f"= {cold / floor_ms:.1f}x the floor\n"
            f"   fresh snapshot, steady (1 % of the cameras changed since the last): p50 "
            f"{steady:.2f} ms = {steady / floor_ms:.1f}x the floor"
        )
        for conditional in (False, True):
            await polling_round(lab, service.url, pollers, seconds, conditional, floor_ms)

        await lab.seed_to(5000)
        large = await camera_reads(service.url, "stat-3", 300)
    await lab.aclose()
    growth = await growth_rounds(valkey_url, sorted(scales), rounds=5)
    for scale, ms in growth.items():
        print(f"4. cold snapshot at {scale:,} cameras: p50 {ms:.2f} ms")
    if 1000 in growth and 5000 in growth:
        print(f"   t(5,000) / t(1,000) = {growth[5000] / growth[1000]:.2f} (linear: 5)")
    print(
        f"5. one camera's stats over HTTP: p50 {median_ms(small):.3f} ms with 10 active "
        f"cameras, {median_ms(large):.3f} ms with {lab.seeded:,}: ratio "
        f"{statistics.median(large) / statistics.median(small):.2f}"
    )


async def growth_rounds(valkey_url: str, scales: list[int], rounds: int) -> dict[int, float]:
    """The cold snapshot's median at each scale, one Valkey database per scale, the scales
    taking turns in each round."""
    labs = {scale: Lab(f"{valkey_url}?db={db}") for db, scale in enumerate(scales, 1)}
    for scale, lab in labs.items():
        await lab.seed_to(scale)
    samples: dict[int, list[float]] = {scale: [] for scale in scales}
    for _ in range(rounds):
        for scale, lab in labs.items():
            samples[scale] += await lab.cold(4)
    for lab in labs.values():
        await lab.aclose()
    return {scale: median_ms(times) for scale, times in samples.items()}


async def polling_round(
    lab: Lab, url: str, pollers: int, seconds: float, conditional: bool, floor_ms: float
) -> None:
    stop = asyncio.Event()
    churning = asyncio.create_task(writer(lab, stop))
    reads_before, t0 = service_reads(url), time.monotonic()
    result = await poll(url, pollers, seconds, conditional)
    elapsed = time.monotonic() - t0
    reads = service_reads(url) - reads_before
    stop.set()
    await churning
    latencies = result.latencies
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    kind = "conditional (If-None-Match)" if conditional else "plain"
    print(
        f"3. {pollers} pollers, {kind}, {elapsed:.0f} s: {len(latencies)} requests "
        f"{dict(sorted(result.statuses.items()))}, p50 {p50:.2f} ms, p99 {p99:.2f} ms = "
        f"{p99 / floor_ms:.1f}x the floor; the service read Valkey {reads / elapsed:.2f} "
        "times a second"
    )


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="polling time per mode")
    parser.add_argument("--pollers", type=int, default=16)
    parser.add_argument("--scales", type=int, nargs="+", default=[100, 1000, 5000])
    args = parser.parse_args()
    run_on_valkey(
        lambda url, tmp: run(url, tmp, args.seconds, args.pollers, args.scales), uvloop.run
    )


if __name__ == "__main__":
    main()
