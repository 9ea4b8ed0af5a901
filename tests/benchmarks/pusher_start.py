"""Time from first-viewer reserve to pusher container running, against `docker run -d`.

    python -m tests.benchmarks.pusher_start [--cameras 20] [--rounds 3] [--skip-sequential]

Starts an embedded Valkey and the real service (``cctv-orchestrator serve``) as a separate
process, with the locally built placeholder pusher image (``tests/harness/images.py``, never
pulled)
and ``CCTV_PUSHER_NETWORK=none``: no container gets a network. "Running" is the Docker
engine's ``start`` event for the container, read from the engine's event stream in a thread;
each latency is the event's engine timestamp (``timeNano``, wall clock) minus the wall-clock
time just before the request was sent. The ``create`` event splits each figure in two.

Cameras go one at a time, so each figure is uncontended. Interleaved with them, in the same
run and on the same image, come the baselines: ``docker run -d --network none`` (the CLI, one
process per container), a plain create+start through the docker SDK, and a create+start through
the SDK with the orchestrator's own host config (``--init``, memory and CPU limits, log
options). One warm-up of each goes first and is not counted. Then the orchestrator and the CLI
again with all cameras at once, and the teardown of that burst: every burst reservation
released at once, timed from the last release answered to the engine's last ``destroy`` event,
against stopping and removing the CLI's burst containers in parallel through the SDK (same
stop timeout). The orchestrator's figure includes its drain grace, which is printed beside it.
The burst and its teardown repeat ``--rounds`` times (fresh cameras each round): p50 and max,
and how many rounds stayed within grace + 1.5 x the SDK's time of the same round.

The engine must be idle: another orchestrator removes our containers as orphans (and ours
theirs), and a test run's sweep removes every test container, so the run refuses to start
while managed or test containers exist, and reports containers of its own that died before
cleanup. Cleanup releases every reservation, waits for the service to remove its containers,
force-removes whatever else this run created (by name) and stops the service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import docker
import docker.errors
import uvloop
from docker.types import LogConfig

from orchestrator.domain.containers import MANAGED_FILTER
from tests.benchmarks.http_api import bench_service
from tests.benchmarks.stats import percentile, run_on_valkey, script_parser
from tests.harness.http import ADMIN_HEADERS
from tests.harness.images import TEST_LABEL, TEST_LABELS, build_placeholder_pusher_image, sweep
from tests.harness.store import register_cameras

TARGET_RATIO = 1.3
ORCHESTRATOR = "orchestrator: reserve -> start event"
CLI = "docker run -d: spawn -> start event"
SDK_PLAIN = "SDK create+start: call -> start event"
SDK_SPEC = "SDK, orchestrator's host config -> start event"
TEARDOWN = "orchestrator: last release -> last destroy"
TEARDOWN_BASELINE = "SDK stop+remove in parallel -> last destroy"
EVENT_TIMEOUT_SECONDS = 30.0
GRACE_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Started:
    """One engine ``start`` event: its engine timestamp and when it reached us (wall clock)."""

    engine: float
    arrived: float


class StartEvents:
    """The engine's container ``start`` events, by container name, read in a thread.

    Subscribes to every container ``create``, ``start`` and ``die`` (not only managed
    containers: the baselines carry the test label, not ours); names are unique to this run, so
    matching by name is exact. The first create and start of a name count. A ``die`` of one of
    this run's containers before cleanup means something else stopped it (see
    :func:`engine_in_use`). The subscription is in place when the constructor returns.
    """

    def __init__(self, api: Any, run_id: str) -> None:
        self._stream = api.events(
            decode=True,
            filters={"type": "container", "event": ["create", "start", "die", "destroy"]},
        )
        self._run_id = run_id
        self._seen: dict[tuple[str, str], Started] = {}
        self.died: list[str] = []
        self.tearing_down = False  # from then on a ``die`` is expected, not a disturbance
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="bench-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream closes under us at the end
            for event in self._stream:
                arrived = time.time()
                attributes = (event.get("Actor") or {}).get("Attributes") or {}
                name = str(attributes.get("name", ""))
                action = str(event.get("Action", ""))
                with self._cond:
                    if action == "die":
                        if self._run_id in name and not self.tearing_down:
                            self.died.append(name)
                    elif (action, name) not in self._seen:
                        engine = int(event.get("timeNano") or 0) / 1e9
                        self._seen[action, name] = Started(engine, arrived)
                        self._cond.notify_all()

    def wait(self, action: str, name: str, timeout: float = EVENT_TIMEOUT_SECONDS) -> Started:
        with self._cond:
            if not self._cond.wait_for(lambda: (action, name) in self._seen, timeout):
                raise TimeoutError(f"no {action} event for {name} within {timeout} s")
            return self._seen[action, name]

    async def started(self, name: str) -> Started:
        return await asyncio.to_thread(self.wait, "start", name)

    async def destroyed(self, name: str) -> Started:
        return await asyncio.to_thread(self.wait, "destroy", name, 60.0)

    def created(self, name: str) -> float:
        """The engine time of the name's ``create`` (call after its start was seen)."""
        return self.wait("create", name, timeout=1.0).engine

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        self._thread.join(timeout=5)


@dataclass
class Series:
    """Latencies in seconds, by figure name, in the order they are printed."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def get(self, name: str) -> list[float]:
        return self.samples.get(name, [])


def line(name: str, samples_s: list[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    if not ms:
        return f"{name:<48} n=0"
    return (
        f"{name:<48} n={len(ms):<3} p50={percentile(ms, 50):7.1f} ms  "
        f"p95={percentile(ms, 95):7.1f} ms  max={max(ms):7.1f} ms  "
        f"mean={statistics.fmean(ms):7.1f} ms"
    )


def ratio_line(name: str, ours: list[float], theirs: list[float]) -> str:
    p50 = percentile(ours, 50) / percentile(theirs, 50)
    p95 = percentile(ours, 95) / percentile(theirs, 95)
    verdict = "met" if max(p50, p95) <= TARGET_RATIO else "MISSED"
    return (
        f"{name:<48} p50/p50={p50:5.2f}  p95/p95={p95:5.2f}  (target <= {TARGET_RATIO}: {verdict})"
    )


# --- the service ----------------------------------------------------------------------------


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.auth = ADMIN_HEADERS

    async def reserve(self, camera_id: str) -> str:
        body = {"camera_id": camera_id, "user_id": "bench", "source": "BENCH"}
        async with self.session.post(
            f"{self.url}/api/v1/stream/reserve", json=body, headers=self.auth
        ) as response:
            data = await response.json()
            assert response.status == 201, data
            assert data["pusher_state"] == "STARTING", data  # the first viewer claims the start
            return str(data["reservation_id"])

    async def release(self, rid: str) -> None:
        async with self.session.delete(
            f"{self.url}/api/v1/stream/release/{rid}", headers=self.auth
        ) as response:
            assert response.status == 200, await response.text()

    async def pusher_state(self, camera_id: str) -> str | None:
        async with self.session.get(f"{self.url}/api/v1/stream/stats") as response:
            data = await response.json()
        for camera in data["camera_stats"]:
            if camera["camera_id"] == camera_id:
                return str(camera["pusher_state"])
        return None

    async def wait_running(self, camera_id: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while (state := await self.pusher_state(camera_id)) != "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{camera_id} is {state}, not RUNNING")
            await asyncio.sleep(0.005)


# --- one start of each kind -----------------------------------------------------------------


class Bench:
    def __init__(self, api: Api, docker_api: Any, events: StartEvents, image: str) -> None:
        self.api = api
        self.docker = docker_api
        self.events = events
        self.image = image
        self.reservations: dict[str, str] = {}  # camera id -> reservation id, until released
        self.released = 0

    async def orchestrator(self, camera_id: str, out: Series, *, poll_state: bool) -> None:
        t0 = time.time()
        rid = await self.api.reserve(camera_id)
        answered = time.time()
        self.reservations[camera_id] = rid
        name = f"whip-pusher-{camera_id}"
        started = await self.events.started(name)
        out.add(ORCHESTRATOR, started.engine - t0)
        out.add("  reserve answered (201)", answered - t0)
        out.add("  reserve -> create event", self.events.created(name) - t0)
        out.add("  start event reached a client", started.arrived - t0)
        if poll_state:
            await self.api.wait_running(camera_id)
            out.add("  pusher_state RUNNING seen in stats (5 ms poll)", time.time() - t0)

    async def cli(self, name: str, out: Series) -> None:
        command = ["docker", "run", "-d", "--network", "none", "--label", f"{TEST_LABEL}=1"]
        t0 = time.time()
        process = await asyncio.create_subprocess_exec(
            *command, "--name", name, self.image, stdout=subprocess.PIPE
        )
        await process.communicate()
        returned = time.time()
        assert process.returncode == 0, name
        started = await self.events.started(name)
        out.add(CLI, started.engine - t0)
        out.add("  spawn -> create event", self.events.created(name) - t0)
        out.add("  docker run -d returned", returned - t0)

    def _sdk_create_start(self, name: str, same_as_orchestrator: bool) -> None:
        if same_as_orchestrator:  # what SyncEngine.create_and_start sends (default settings)
            host_config = self.docker.create_host_config(
                restart_policy={"Name": "no"},
                log_config=LogConfig(
                    type=LogConfig.types.JSON, config={"max-size": "10m", "max-file": "3"}
                ),
                mem_limit="256m",
                nano_cpus=1_000_000_000,
                network_mode="none",
                init=True,
            )
            env = {"CAMERA_ID": name, "RTSP_URL": "rtsp://127.0.0.1/x", "WHIP_URL": ""}
        else:
            host_config = self.docker.create_host_config(network_mode="none")
            env = {}
        created = self.docker.create_container(
            image=self.image,
            name=name,
            environment=env,
            labels=TEST_LABELS,
            host_config=host_config,
            stop_timeout=10 if same_as_orchestrator else None,
            detach=True,
        )
        self.docker.start(created["Id"])

    async def sdk(self, name: str, out: Series, *, same_as_orchestrator: bool) -> None:
        t0 = time.time()
        await asyncio.to_thread(self._sdk_create_start, name, same_as_orchestrator)
        started = await self.events.started(name)
        figure = SDK_SPEC if same_as_orchestrator else SDK_PLAIN
        out.add(figure, started.engine - t0)
        out.add(
            f"  {'same config' if same_as_orchestrator else 'plain'}: call -> create event",
            self.events.created(name) - t0,
        )


# --- the run --------------------------------------------------------------------------------


async def sequential(bench: Bench, run: str, cameras: int) -> Series:
    warm = Series()
    await bench.orchestrator(f"ps-{run}-warm", warm, poll_state=True)
    await bench.cli(f"bench-plain-{run}-warm", warm)
    await bench.sdk(f"bench-sdk-{run}-warm", warm, same_as_orchestrator=False)
    await bench.sdk(f"bench-spec-{run}-warm", warm, same_as_orchestrator=True)
    print("warm-up (not counted):")
    for name, samples in warm.samples.items():
        print(f"  {name:<46} {samples[0] * 1000:7.1f} ms")
    out = Series()
    for i in range(cameras):  # interleaved, so drift in machine load hits all kinds alike
        await bench.orchestrator(f"ps-{run}-{i}", out, poll_state=True)
        await bench.cli(f"bench-plain-{run}-{i}", out)
        await bench.sdk(f"bench-sdk-{run}-{i}", out, same_as_orchestrator=False)
        await bench.sdk(f"bench-spec-{run}-{i}", out, same_as_orchestrator=True)
    return out


async def burst(bench: Bench, run: str, cameras: int) -> tuple[Series, dict[str, float]]:
    out = Series()
    spans: dict[str, float] = {}

    async def timed(name: str, jobs: list[Awaitable[None]]) -> None:
        t0 = time.time()
        await asyncio.gather(*jobs)
        spans[name] = time.time() - t0

    await timed(
        ORCHESTRATOR,
        [bench.orchestrator(f"pb-{run}-{i}", out, poll_state=False) for i in range(cameras)],
    )
    await timed(
        CLI,
        [bench.cli(f"bench-burst-{run}-{i}", out) for i in range(cameras)],
    )
    return out, spans


def stop_and_remove(docker_api: Any, name: str) -> None:
    docker_api.stop(name, timeout=STOP_TIMEOUT_SECONDS)
    docker_api.remove_container(name, v=True)


async def teardown(bench: Bench, run: str, cameras: int) -> dict[str, float]:
    """Release the burst's cameras at once; then stop+remove the CLI burst as the baseline."""
    bench.events.tearing_down = True
    burst = {c: r for c, r in bench.reservations.items() if c.startswith(f"pb-{run}-")}
    await asyncio.gather(*(bench.api.release(rid) for rid in burst.values()))
    released = time.time()
    for camera_id in burst:
        del bench.reservations[camera_id]
    bench.released += len(burst)
    gone = [await bench.events.destroyed(f"whip-pusher-{c}") for c in burst]
    spans = {TEARDOWN: max(g.engine for g in gone) - released}
    names = [f"bench-burst-{run}-{i}" for i in range(cameras)]
    t0 = time.time()
    await asyncio.gather(*(asyncio.to_thread(stop_and_remove, bench.docker, n) for n in names))
    gone = [await bench.events.destroyed(n) for n in names]
    spans[TEARDOWN_BASELINE] = max(g.engine for g in gone) - t0
    return spans


def report_teardown(spans: dict[str, float], cameras: int) -> None:
    ours, theirs = spans[TEARDOWN], spans[TEARDOWN_BASELINE]
    print(f"\nteardown of all {cameras} at once (drain grace {GRACE_SECONDS} s):")
    print(f"{TEARDOWN:<48} {ours * 1000:7.1f} ms")
    print(f"{'  of which beyond the grace':<48} {(ours - GRACE_SECONDS) * 1000:7.1f} ms")
    print(f"{TEARDOWN_BASELINE:<48} {theirs * 1000:7.1f} ms")
    print(f"{'ratio (orchestrator - grace) / SDK':<48} {(ours - GRACE_SECONDS) / theirs:5.2f}")


async def wait_removed(docker_api: Any, prefix: str, timeout: float = 60.0) -> int:
    """Wait until no managed container named ``prefix*`` is left; returns what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = await asyncio.to_thread(
            docker_api.containers, all=True, filters={"label": [MANAGED_FILTER], "name": prefix}
        )
        if not left or time.monotonic() > deadline:
            return len(left)
        await asyncio.sleep(0.2)


def engine_in_use(docker_api: Any) -> list[str]:
    """Containers that show another orchestrator or test run on this engine.

    The service removes every managed container it has no viewers for (reconcile "orphan"),
    and a test run's sweep force-removes every test-labelled one: two runs on one engine stop
    each other's containers, so this benchmark runs only on an engine that has neither.
    """
    names: set[str] = set()
    for label in (MANAGED_FILTER, f"{TEST_LABEL}=1"):
        rows = docker_api.containers(all=True, filters={"label": [label]})
        names.update(str((row.get("Names") or ["?"])[0]).lstrip("/") for row in rows)
    return sorted(names)


def remove_run_containers(docker_api: Any, run_id: str) -> int:
    """Force-remove whatever this run left (baselines, and pushers the service did not remove)."""
    rows = docker_api.containers(all=True, filters={"name": f"-{run_id}-"})
    for row in rows:
        with contextlib.suppress(docker.errors.NotFound):
            docker_api.remove_container(row["Id"], force=True, v=True)
    return len(rows)


def report(series: Series, cameras: int) -> None:
    print(f"\none at a time ({cameras} of each, interleaved):")
    for name, samples in series.samples.items():
        print(line(name, samples))
    ours = series.get(ORCHESTRATOR)
    for name, baseline in (
        ("docker run -d", CLI),
        ("SDK, same host config", SDK_SPEC),
    ):
        print(ratio_line(f"ratio orchestrator / {name}", ours, series.get(baseline)))


def report_burst(series: Series, spans: dict[str, float], cameras: int) -> None:
    print(f"\nall {cameras} at once (orchestrator first, then docker run -d):")
    for name, samples in series.samples.items():
        print(line(name, samples))
    for name, span in spans.items():
        print(f"{name.split(':')[0] + f': all {cameras} started after':<48} {span * 1000:7.1f} ms")


async def measure(
    bench: Bench, run_id: str, cameras: int, args: argparse.Namespace
) -> tuple[Series, Series, dict[str, float], list[dict[str, float]]]:
    series = Series() if args.skip_sequential else await sequential(bench, run_id, cameras)
    if args.no_burst:
        return series, Series(), {}, []
    burst_series, spans, teardowns = Series(), {}, []
    for k in range(args.rounds):
        tag = burst_tag(run_id, k)
        bench.events.tearing_down = False
        round_series, round_spans = await burst(bench, tag, cameras)
        if k == 0:
            burst_series, spans = round_series, round_spans
        teardowns.append(await teardown(bench, tag, cameras))
    return series, burst_series, spans, teardowns


def burst_tag(run_id: str, round_: int) -> str:
    return f"{run_id}-r{round_}"


def report_teardowns(rounds: list[dict[str, float]], cameras: int) -> None:
    """Each round's teardown, then p50 and max over the rounds, and the bound
    grace + 1.5 x the SDK's time in the same round."""
    for k, spans in enumerate(rounds, 1):
        print(f"\nround {k}:", end="")
        report_teardown(spans, cameras)
    if len(rounds) < 2:
        return
    ours = [r[TEARDOWN] for r in rounds]
    theirs = [r[TEARDOWN_BASELINE] for r in rounds]
    ratios = [(o - GRACE_SECONDS) / t for o, t in zip(ours, theirs, strict=True)]
    within = sum(o <= GRACE_SECONDS + 1.5 * t for o, t in zip(ours, theirs, strict=True))
    print(f"\nteardown of {cameras} at once over {len(rounds)} rounds:")
    for name, samples in ((TEARDOWN, ours), (TEARDOWN_BASELINE, theirs)):
        print(
            f"{name:<48} p50 {statistics.median(samples) * 1000:7.1f} ms  "
            f"max {max(samples) * 1000:7.1f} ms"
        )
    print(
        f"{'ratio (orchestrator - grace) / SDK':<48} p50 {statistics.median(ratios):5.2f}  "
        f"max {max(ratios):5.2f}"
    )
    print(f"rounds within grace + 1.5 x SDK: {within} of {len(rounds)}")


async def run(valkey_url: str, tmp: Path, args: argparse.Namespace) -> None:
    client = docker.from_env(timeout=60)
    docker_api = client.api
    busy = engine_in_use(docker_api)
    if busy and not args.shared_engine:
        raise SystemExit(
            f"{len(busy)} managed or test containers exist ({', '.join(busy[:5])}, ...): "
            "another orchestrator or test run uses this engine. Run when it is idle "
            "(or pass --shared-engine)."
        )
    image = build_placeholder_pusher_image(client)
    run_id = secrets.token_hex(3)
    cameras: int = args.cameras
    rounds = 0 if args.no_burst else args.rounds
    await register_cameras(
        valkey_url,
        f"ps-{run_id}-warm",
        *(f"ps-{run_id}-{i}" for i in range(cameras)),
        *(f"pb-{burst_tag(run_id, k)}-{i}" for k in range(rounds) for i in range(cameras)),
    )
    service = bench_service(
        valkey_url,
        tmp,
        ready_path="/ready",
        CCTV_PUSHERS_ENABLED="true",
        CCTV_PUSHER_IMAGE=image,
        CCTV_PUSHER_NETWORK="none",
        CCTV_DRAIN_GRACE_SECONDS=str(GRACE_SECONDS),
        CCTV_PUSHER_STOP_TIMEOUT_SECONDS=str(STOP_TIMEOUT_SECONDS),
    )
    events = StartEvents(docker_api, run_id)
    try:
        await asyncio.to_thread(service.start)
        async with aiohttp.ClientSession() as session:
            api = Api(session, service.url)
            bench = Bench(api, docker_api, events, image)
            print(
                f"pusher start: {cameras} cameras, image {image}, "
                f"Docker {docker_api.version()['Version']} ({client.info()['Driver']}), "
                f"{os.cpu_count()} CPUs, network none"
            )
            try:
                series, burst_series, spans, teardowns = await measure(bench, run_id, cameras, args)
                died = list(events.died)
            finally:
                await asyncio.gather(*(api.release(rid) for rid in bench.reservations.values()))
                bench.released += len(bench.reservations)
                left = await wait_removed(docker_api, f"whip-pusher-p[sb]-{run_id}-")
        if not args.skip_sequential:
            report(series, cameras)
        if teardowns:
            report_burst(burst_series, spans, cameras)
            report_teardowns(teardowns, cameras)
        print(
            f"\nreleased {bench.released} reservations; orchestrator containers "
            f"left {left}; containers of this run that died before cleanup: {len(died)}"
        )
        if died:
            print(f"WARNING: something else stopped {', '.join(died[:5])}: figures disturbed")
    finally:
        events.close()
        await asyncio.to_thread(remove_run_containers, docker_api, run_id)
        await asyncio.to_thread(service.stop)
        if args.sweep:
            sweep(client)
        client.close()


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--cameras", type=int, default=20, help="cameras (and baselines) to time")
    parser.add_argument("--no-burst", action="store_true", help="skip the all-at-once figures")
    parser.add_argument(
        "--skip-sequential", action="store_true", help="only the all-at-once figures"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="all-at-once starts and teardowns (default 3)"
    )
    parser.add_argument(
        "--shared-engine",
        action="store_true",
        help="run even when other managed or test containers exist (they may be removed)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="finish with tests.harness.images.sweep(): removes all test containers, not ours only",
    )
    args = parser.parse_args()
    run_on_valkey(lambda url, tmp: run(url, tmp, args), uvloop.run)


if __name__ == "__main__":
    main()
