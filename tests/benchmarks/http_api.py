"""Reserve+release over HTTP at 32 concurrent clients against one uvicorn worker, and the
stats endpoint with 1,000 active cameras and 10,000 reservations.

    python -m tests.benchmarks.http_api [--pairs 10000] [--concurrency 32]

Starts an embedded Valkey and the real service (``cctv-orchestrator serve``) as a separate
process on 127.0.0.1. Reserve+release pairs come from 32 keep-alive connections
of a lean raw HTTP/1.1 client (``rawhttp``) on uvloop; stats uses aiohttp; wrk adds
reserve-only load.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import uvloop

from orchestrator.store.client import connect
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from tests.benchmarks.rawhttp import RawConnection, build
from tests.benchmarks.stats import run_on_valkey, script_parser, summary_ms
from tests.harness.constants import ADMIN_KEY
from tests.harness.http import ADMIN_HEADERS
from tests.harness.service import ServiceProcess
from tests.harness.store import register_cameras

BENCH_LIMITS = {"BENCH": 1_000_000, "TOTAL": 1_000_000}


def bench_service(
    valkey_url: str, tmp: Path, *, ready_path: str = "/health", **overrides: str
) -> ServiceProcess:
    """A real ``serve`` of the REST API alone, logging warnings only; ``overrides``
    (pusher_start enables pushers, and waits for ``/ready``)."""
    env = {"CCTV_SOURCE_LIMITS": json.dumps(BENCH_LIMITS), **overrides}
    return ServiceProcess("bench", tmp, valkey_url, env, log_level="warning", ready_path=ready_path)


async def pairs_benchmark(url: str, pairs: int, concurrency: int) -> None:
    host = url.removeprefix("http://")
    hostname, _, port = host.partition(":")
    auth = ADMIN_HEADERS
    reserves = [
        build(
            "POST",
            "/api/v1/stream/reserve",
            host,
            {**auth, "Content-Type": "application/json"},
            json.dumps({"camera_id": f"cam-{i}", "user_id": "bench", "source": "BENCH"}).encode(),
        )
        for i in range(100)
    ]
    reserve_s: list[float] = []
    pair_s: list[float] = []

    async def worker(todo: Iterator[int]) -> None:
        connection = await RawConnection.open(hostname, int(port))
        try:
            for i in todo:
                t0 = time.perf_counter()
                status, body = await connection.request(reserves[i % 100])
                t1 = time.perf_counter()
                assert status == 201, body
                rid = json.loads(body)["reservation_id"]
                status, body = await connection.request(
                    build("DELETE", f"/api/v1/stream/release/{rid}", host, auth)
                )
                assert status == 200, body
                pair_s.append(time.perf_counter() - t0)
                reserve_s.append(t1 - t0)
        finally:
            await connection.close()

    warmup = iter(range(min(1000, pairs)))
    await asyncio.gather(*(worker(warmup) for _ in range(concurrency)))
    reserve_s.clear()
    pair_s.clear()
    todo = iter(range(pairs))
    started = time.perf_counter()
    await asyncio.gather(*(worker(todo) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    print(f"HTTP pairs={pairs} concurrency={concurrency} elapsed={elapsed:.2f}s")
    print(f"throughput             {pairs / elapsed:,.0f} reserve+release pairs/s")
    print(summary_ms("reserve latency", reserve_s))
    print(summary_ms("pair latency", pair_s))


async def seed(valkey_url: str, cameras: int, reservations: int) -> None:
    ids = [f"stat-{i}" for i in range(cameras)]
    await register_cameras(valkey_url, *ids)
    client = connect(valkey_url, timeout_seconds=10.0)
    policy = LeasePolicy(lease_ms=3_600_000, default_limits=tuple(BENCH_LIMITS.items()))
    store = ReservationStore(client, Scripts(client), policy, owner="seed")
    for start in range(0, reservations, 500):
        await asyncio.gather(
            *(store.reserve(ids[i % cameras], "BENCH", "u") for i in range(start, start + 500))
        )
    await client.aclose()


async def stats_benchmark(url: str, samples: int) -> None:
    timings: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(samples):
            t0 = time.perf_counter()
            async with session.get(f"{url}/api/v1/stream/stats") as response:
                body = await response.json()
            timings.append(time.perf_counter() - t0)
    print(
        f"stats: {len(body['camera_stats'])} cameras, {body['total_reserved']} reservations, "
        f"{len(json.dumps(body)) // 1024} KiB"
    )
    print(summary_ms("GET /stream/stats", timings))


WRK_SCRIPT = """
local i = 0
request = function()
  i = i + 1
  local body = '{"camera_id":"cam-' .. (i % 100) .. '","user_id":"wrk","source":"BENCH"}'
  return wrk.format("POST", "/api/v1/stream/reserve", {
    ["Authorization"] = "Bearer BEARER_KEY", ["Content-Type"] = "application/json"}, body)
end
"""


def wrk_reserve(url: str, tmp: Path, concurrency: int) -> None:
    """Reserve-only load from wrk (C), so the client's own CPU cost is small."""
    if shutil.which("wrk") is None:
        print("wrk: not installed (apt-get install wrk) - reserve-only figures skipped")
        return
    script = tmp / "reserve.lua"
    script.write_text(WRK_SCRIPT.replace("BEARER_KEY", ADMIN_KEY))
    command = ["wrk", "-t1", f"-c{concurrency}", "-d10s", "--latency", "-s", str(script), url]
    print("$", " ".join(command))
    print(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


async def run(valkey_url: str, tmp: Path, pairs: int, concurrency: int) -> None:
    with bench_service(valkey_url, tmp) as service:
        await register_cameras(valkey_url, *(f"cam-{i}" for i in range(100)))
        await pairs_benchmark(service.url, pairs, concurrency)
        await seed(valkey_url, 1000, 10_000)
        await stats_benchmark(service.url, 50)
        await asyncio.to_thread(wrk_reserve, service.url, tmp, concurrency)


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    run_on_valkey(lambda url, tmp: run(url, tmp, args.pairs, args.concurrency), uvloop.run)


if __name__ == "__main__":
    main()
