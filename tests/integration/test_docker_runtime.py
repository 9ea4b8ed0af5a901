"""DockerRuntime against the real engine, with locally built images (no registry).

Every container and network made here carries ``cctv.orchestrator.test=1`` and is swept by
label after each test and at the end of the session. Without a reachable engine these tests
fail (never skip): run ``bash scripts/ensure-docker.sh``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import docker
import pytest
import redis

from orchestrator.domain.containers import ContainerConflict
from orchestrator.domain.ids import container_name
from orchestrator.errors import RuntimeUnavailable
from orchestrator.pusher.placement import remove_fenced
from orchestrator.runtime import (
    CAMERA_LABEL,
    GENERATION_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    DockerRuntime,
    EventKind,
    Phase,
    PusherSpec,
    RuntimeEvent,
)
from tests.harness.images import (
    TEST_LABELS,
    create_test_network,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("swept")]

RTSP_SECRET = "rtsp://admin:Sup3rSecretPw@10.1.2.3:554/stream1"
TOKEN_SECRET = "whip-bearer-7f3a9c0d2e1b"
SECRETS = (RTSP_SECRET, TOKEN_SECRET, "Sup3rSecretPw")


@pytest.fixture
async def runtime() -> AsyncIterator[DockerRuntime]:
    rt = DockerRuntime(timeout_seconds=30)
    yield rt
    await rt.close()


@pytest.fixture
def camera_id() -> str:
    return f"rt-{uuid.uuid4().hex[:10]}"


def spec_for(camera_id: str, image: str, generation: int = 1) -> PusherSpec:
    return PusherSpec(
        camera_id=camera_id,
        generation=generation,
        image=image,
        env={"RTSP_URL": RTSP_SECRET, "WHIP_BEARER_TOKEN": TOKEN_SECRET},
        network="none",
        memory_bytes=64 * 1024 * 1024,
        cpus=0.25,
        extra_labels=TEST_LABELS,
    )


def inspect(docker_api: Any, ref: str) -> dict[str, Any]:
    return cast(dict[str, Any], docker_api.api.inspect_container(ref))


async def test_create_and_start_sets_name_labels_and_limits(
    runtime: DockerRuntime,
    docker_api: Any,
    pusher_image: str,
    camera_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    spec = spec_for(camera_id, pusher_image, generation=3)
    info = await runtime.create_and_start(spec)

    assert info.running and info.managed
    assert (info.name, info.camera_id, info.generation) == (
        f"whip-pusher-{camera_id}",
        camera_id,
        3,
    )
    assert info.started_at is not None and info.exit_code is None
    data = inspect(docker_api, info.ref)
    assert data["State"]["Running"] is True
    assert data["Name"] == f"/{container_name(camera_id)}"
    labels = data["Config"]["Labels"]
    assert labels[MANAGED_BY_LABEL] == MANAGED_BY
    assert labels[CAMERA_LABEL] == camera_id
    assert labels[GENERATION_LABEL] == "3"
    host = data["HostConfig"]
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 250_000_000
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }
    assert host["NetworkMode"] == "none"
    assert data["Config"]["StopTimeout"] == 10
    for secret in SECRETS:
        assert not any(secret in key or secret in value for key, value in labels.items())
        assert secret not in repr(spec) and secret not in repr(info)
        for record in caplog.records:
            assert secret not in record.getMessage() and secret not in str(record.__dict__)
    assert any(r.getMessage() == "pusher container started" for r in caplog.records)


async def test_second_create_raises_conflict_and_keeps_the_existing_container(
    runtime: DockerRuntime, docker_api: Any, pusher_image: str, camera_id: str
) -> None:
    first = await runtime.create_and_start(spec_for(camera_id, pusher_image, generation=1))

    with pytest.raises(ContainerConflict) as raised:
        await runtime.create_and_start(spec_for(camera_id, pusher_image, generation=2))

    existing = raised.value.existing
    assert existing is not None
    assert (existing.ref, existing.generation, existing.managed) == (first.ref, 1, True)
    assert existing.running
    data = inspect(docker_api, container_name(camera_id))
    assert data["Id"] == first.ref and data["State"]["Running"] is True
    assert data["Config"]["Labels"][GENERATION_LABEL] == "1"


async def test_a_foreign_container_is_reported_and_never_removed(
    runtime: DockerRuntime, docker_api: Any, pusher_image: str, camera_id: str
) -> None:
    foreign = docker_api.containers.run(
        pusher_image, name=container_name(camera_id), detach=True, network_mode="none"
    )

    with pytest.raises(ContainerConflict) as raised:
        await runtime.create_and_start(spec_for(camera_id, pusher_image))
    existing = raised.value.existing
    assert existing is not None and existing.ref == foreign.id and not existing.managed

    assert await remove_fenced(runtime, camera_id, 10**9) is False
    assert inspect(docker_api, foreign.id)["State"]["Running"] is True


async def test_remove_refuses_a_newer_generation_and_removes_otherwise(
    runtime: DockerRuntime, docker_api: Any, pusher_image: str, camera_id: str
) -> None:
    info = await runtime.create_and_start(spec_for(camera_id, pusher_image, generation=5))

    assert await remove_fenced(runtime, camera_id, 4) is False
    assert inspect(docker_api, info.ref)["State"]["Running"] is True

    started = time.monotonic()
    assert await remove_fenced(runtime, camera_id, 5) is True
    assert time.monotonic() - started < 5.0  # the runbook's cleanup check
    assert await runtime.get(camera_id) is None
    with pytest.raises(docker.errors.NotFound):
        docker_api.api.inspect_container(info.ref)


async def test_remove_of_a_missing_container_is_fine(
    runtime: DockerRuntime, camera_id: str
) -> None:
    assert await runtime.get(camera_id) is None
    assert await remove_fenced(runtime, camera_id, 1) is True


async def test_list_managed_finds_only_managed_containers_in_every_state(
    runtime: DockerRuntime, docker_api: Any, pusher_image: str, camera_id: str
) -> None:
    running = await runtime.create_and_start(spec_for(camera_id, pusher_image, generation=2))
    stopped = await runtime.create_and_start(spec_for(f"{camera_id}-b", pusher_image))
    docker_api.api.kill(stopped.ref)
    docker_api.api.wait(stopped.ref, timeout=30)
    unmanaged = docker_api.containers.run(
        pusher_image, name=f"not-managed-{camera_id}", detach=True, network_mode="none"
    )

    listed = {info.ref: info for info in await runtime.list_managed()}

    assert unmanaged.id not in listed
    assert all(info.managed for info in listed.values())
    assert listed[running.ref].phase is Phase.RUNNING and listed[running.ref].generation == 2
    assert listed[running.ref].camera_id == camera_id
    assert listed[stopped.ref].phase is Phase.EXITED and listed[stopped.ref].exit_code == 137


async def test_events_report_start_die_and_destroy(
    runtime: DockerRuntime, pusher_image: str, camera_id: str
) -> None:
    since = time.time()
    info = await runtime.create_and_start(spec_for(camera_id, pusher_image, generation=7))
    stop = asyncio.Event()

    async def docker_kill_then_remove() -> None:
        await asyncio.sleep(0.5)  # usually after the subscription; ``since`` covers it if not
        proc = await asyncio.create_subprocess_exec(
            "docker", "kill", info.ref, stdout=asyncio.subprocess.DEVNULL
        )
        assert await proc.wait() == 0
        assert await remove_fenced(runtime, camera_id, 7) is True

    actor = asyncio.create_task(docker_kill_then_remove())
    seen: list[RuntimeEvent] = []
    try:
        async with contextlib.aclosing(runtime.events(stop, since=since)) as events:
            async with asyncio.timeout(20):
                async for event in events:
                    if event.ref == info.ref:
                        seen.append(event)
                    if event.ref == info.ref and event.kind is EventKind.REMOVED:
                        break
    finally:
        await actor

    assert [event.kind for event in seen] == [
        EventKind.STARTED,
        EventKind.ENDED,
        EventKind.REMOVED,
    ]
    died = seen[1]
    assert (died.camera_id, died.generation, died.exit_code) == (camera_id, 7, 137)
    assert died.name == container_name(camera_id)
    assert not [t for t in threading.enumerate() if t.name == "docker-events"]


async def test_events_end_when_stop_is_set(runtime: DockerRuntime) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)
    seen = []
    async with asyncio.timeout(10):
        async for event in runtime.events(stop):
            seen.append(event)
    assert stop.is_set()
    assert not [t for t in threading.enumerate() if t.name == "docker-events"]


# docker-py's UnixHTTPConnection.connect leaves its socket open when connect() fails (the
# socket is closed when collected, with a ResourceWarning); that is the SDK's, not ours.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
async def test_unreachable_engine_raises_runtime_unavailable_quickly(
    tmp_path: Path, pusher_image: str
) -> None:
    runtime = DockerRuntime(f"unix://{tmp_path}/no-such-docker.sock", timeout_seconds=2)
    started = time.monotonic()
    try:
        assert await runtime.ping() is False
        with pytest.raises(RuntimeUnavailable):
            await runtime.get("cam-1")
        with pytest.raises(RuntimeUnavailable):
            await runtime.list_managed()
        with pytest.raises(RuntimeUnavailable):
            await runtime.create_and_start(spec_for("cam-1", pusher_image))
        with pytest.raises(RuntimeUnavailable):
            await runtime.remove("cam-1")
        with pytest.raises(RuntimeUnavailable):
            async for _ in runtime.events(asyncio.Event()):
                pass
    finally:
        await runtime.close()
        # Join the worker threads (they hold the last failures), then collect those sockets
        # under this test's filter so they are not charged to a later test.
        await asyncio.get_running_loop().shutdown_default_executor()
        gc.collect()
    assert time.monotonic() - started < 3.0


def test_valkey_image_answers_ping_under_testcontainers(
    valkey_image: str, docker_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    # Ryuk's image cannot be pulled here; set the property first so undo restores the real value.
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    network = create_test_network(f"cctv-test-{uuid.uuid4().hex[:8]}", docker_api)
    container = DockerContainer(valkey_image).with_kwargs(network=network, labels=TEST_LABELS)
    # Publish on loopback only (a random host port); the SDK accepts an (ip, port) pair.
    cast(dict[str, Any], container.ports)["6379/tcp"] = ("127.0.0.1", None)
    container.start()
    try:
        binding = docker_api.api.port(container.get_container_id(), 6379)[0]
        assert binding["HostIp"] == "127.0.0.1"
        client = redis.Redis(host="127.0.0.1", port=int(binding["HostPort"]), socket_timeout=1.0)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert client.ping() is True
                    break
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            client.close()
    finally:
        container.stop()
    with pytest.raises(docker.errors.NotFound):
        docker_api.api.inspect_container(container.get_container_id())
