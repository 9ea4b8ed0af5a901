"""Reserve+release pairs per second through the Python API against the embedded Valkey.

    python -m tests.benchmarks.reservations [--pairs 20000] [--concurrency 32]

Starts its own embedded Valkey (AOF on, fsync every second, as ``make run`` does) in a
temporary folder, registers 100 cameras and runs the pairs from one process.
"""

from __future__ import annotations

import asyncio
import time

from orchestrator.domain.models import Camera
from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from tests.benchmarks.stats import run_on_valkey, script_parser, summary_ms
from tests.harness.store import release_by_id


async def run(url: str, pairs: int, concurrency: int) -> None:
    client = connect(url, timeout_seconds=5.0, max_connections=concurrency)
    registry = CameraRegistry(client)
    cameras = [f"bench-{i}" for i in range(100)]
    for camera_id in cameras:
        await registry.put(Camera(camera_id, camera_id, f"rtsp://127.0.0.1/{camera_id}"))
    policy = LeasePolicy(default_limits=(("BENCH", 1_000_000), ("TOTAL", 1_000_000)))
    store = ReservationStore(client, Scripts(client), policy, owner="bench")
    reserve_s: list[float] = []
    release_s: list[float] = []
    pair_s: list[float] = []
    queue = iter(range(pairs))

    async def worker() -> None:
        for i in queue:
            t0 = time.perf_counter()
            admission = await store.reserve(cameras[i % len(cameras)], "BENCH", "bench")
            t1 = time.perf_counter()
            await release_by_id(store, admission.reservation_id)
            t2 = time.perf_counter()
            reserve_s.append(t1 - t0)
            release_s.append(t2 - t1)
            pair_s.append(t2 - t0)

    # warm-up: load scripts, fill the pool
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    for samples in (reserve_s, release_s, pair_s):
        samples.clear()
    queue = iter(range(pairs))
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    print(f"pairs={pairs} concurrency={concurrency} elapsed={elapsed:.2f}s")
    print(f"throughput             {pairs / elapsed:,.0f} reserve+release pairs/s")
    print(summary_ms("reserve latency", reserve_s))
    print(summary_ms("release latency", release_s))
    print(summary_ms("pair latency", pair_s))


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    run_on_valkey(lambda url, _: run(url, args.pairs, args.concurrency), asyncio.run)


if __name__ == "__main__":
    main()
