"""The Swarm test cluster itself: its shape, services on both workers, the host link, node loss.

The session's cluster (``swarm_cluster``: a drained manager and two labelled workers, each
a dockerd in its own namespaces) runs ``dnsrr`` services of the placeholder pusher image on
the pushers' overlay network, reaches a server in the host through its host link, then
loses a worker (stopped, then killed) and gets it back, printing how long the manager took
to report it down and ready. ``pytest -s`` shows the timings.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

from tests.cluster.swarm import MANAGER, TEST_LABELS, SwarmCluster
from tests.cluster.system import until
from tests.harness.images import build_placeholder_pusher_image, docker_client

pytestmark = [pytest.mark.docker]

PREFIX = "cctv-cluster-test-"
TASK_LABEL = "com.docker.swarm.service.id"  # on every container of a swarm task
FINAL = ("failed", "rejected", "complete", "shutdown", "orphaned", "remove")


def _service(cluster: SwarmCluster, name: str, image: str, *command: str, **kwargs: Any) -> Any:
    """A pusher-like service: 1 replica, never restarted by Swarm, dnsrr, on pusher nodes."""
    label, value = cluster.worker_label
    constraints = [f"node.labels.{label}=={value}", *kwargs.pop("constraints", [])]
    return cluster.client().services.create(
        image,
        list(command) or None,
        name=PREFIX + name,
        init=True,
        labels=TEST_LABELS,
        mode=ServiceMode("replicated", replicas=1),
        restart_policy=RestartPolicy(condition="none"),
        endpoint_spec=EndpointSpec(mode="dnsrr"),
        networks=[cluster.network],
        constraints=constraints,
        **kwargs,
    )


def _task_in(service: Any, state: str, timeout: float = 20) -> dict[str, Any]:
    """The service's one task once it reaches ``state``; fails at once if it ends otherwise."""
    found: list[dict[str, Any]] = []

    def probe() -> bool:
        found[:] = service.tasks()
        states = [task["Status"]["State"] for task in found]
        if len(found) == 1 and states[0] == state:
            return True
        if len(found) > 1 or set(states) & (set(FINAL) - {state}):
            pytest.fail(f"{service.name}: tasks {found}")  # ends the wait at once
        return False

    until(f"{service.name}: one task {state}", timeout, probe, lambda: f"tasks: {found}", 0.05)
    return found[0]


@pytest.fixture(scope="module")
def placeholder_image(swarm_cluster: SwarmCluster) -> str:
    """The placeholder pusher: built (a cache hit) and loaded by the cluster fixture."""
    tag = build_placeholder_pusher_image()
    assert tag in swarm_cluster.images
    return tag


@pytest.fixture
def services(swarm_cluster: SwarmCluster) -> Iterator[None]:
    """Removes this test's services afterwards, and waits for their containers to go."""
    yield
    manager = swarm_cluster.client()
    for service in manager.services.list(filters={"name": PREFIX}):
        service.remove()

    def containers_gone() -> bool:
        return not any(
            swarm_cluster.client(name).containers.list(all=True, filters={"label": TASK_LABEL})
            for name in swarm_cluster.worker_names
        )

    seconds = until("the test services' containers removed", 30, containers_gone)
    print(f"services removed, containers gone after {seconds:.2f} s")


def test_the_cluster_has_a_drained_manager_and_two_labelled_workers(
    swarm_cluster: SwarmCluster, placeholder_image: str
) -> None:
    nodes = {node.name: node for node in swarm_cluster.nodes()}
    assert sorted(nodes) == sorted(swarm_cluster.node_names)
    manager = nodes.pop(MANAGER)
    assert (manager.role, manager.availability, manager.state) == ("manager", "drain", "ready")
    label, value = swarm_cluster.worker_label
    for worker in nodes.values():
        assert (worker.role, worker.availability, worker.state) == ("worker", "active", "ready")
        assert worker.labels == {label: value}
        assert worker.address == swarm_cluster.address(worker.name)
    spec = swarm_cluster.client().swarm.attrs["Spec"]
    assert spec["Dispatcher"]["HeartbeatPeriod"] == 1_000_000_000
    network = swarm_cluster.client().networks.get(swarm_cluster.network)
    assert (network.attrs["Driver"], network.attrs["Attachable"]) == ("overlay", True)
    host = docker_client()
    try:
        ids = {tag: host.images.get(tag).id for tag in swarm_cluster.images}
    finally:
        host.close()
    assert placeholder_image in ids
    for name in swarm_cluster.node_names:
        node = swarm_cluster.client(name)
        assert {tag: node.images.get(tag).id for tag in ids} == ids, f"images on {name}"
    from_env = docker.DockerClient(base_url=swarm_cluster.manager_url)  # as DOCKER_HOST
    try:
        assert from_env.info()["Swarm"]["ControlAvailable"] is True
    finally:
        from_env.close()
    print(f"cluster built in {swarm_cluster.build_seconds:.2f} s (images loaded)")


@pytest.mark.usefixtures("services")
def test_both_workers_run_tasks_that_reach_each_other_over_the_overlay(
    swarm_cluster: SwarmCluster, placeholder_image: str
) -> None:
    workers = {swarm_cluster.node(name).id: name for name in swarm_cluster.worker_names}
    started = time.monotonic()
    first = _service(swarm_cluster, "a", placeholder_image)
    task_a = _task_in(first, "running")
    assert task_a["NodeID"] in workers, "a task on the drained manager"
    print(f"service a running on {workers[task_a['NodeID']]} {time.monotonic() - started:.2f} s")

    script = f"""trap 'exit 0' TERM
/bin/busybox ping -c 1 -W 5 {PREFIX}a >/dev/null || exit 3
echo reached {PREFIX}a
/bin/busybox sleep 2147483647 & wait"""
    started = time.monotonic()
    other = f"node.id!={task_a['NodeID']}"
    command = ("/bin/busybox", "sh", "-c", script)
    # as root: busybox ping needs a raw socket, and the image runs as nobody
    second = _service(
        swarm_cluster, "b", placeholder_image, *command, constraints=[other], user="0:0"
    )
    task_b = _task_in(second, "running")
    assert task_b["NodeID"] in workers
    assert task_b["NodeID"] != task_a["NodeID"]
    worker_b = swarm_cluster.client(workers[task_b["NodeID"]])
    container = worker_b.containers.get(task_b["Status"]["ContainerStatus"]["ContainerID"])

    def reached() -> bool:
        assert _task_in(second, "running", 1)  # a failed ping ends the task (exit 3)
        return b"reached" in container.logs()

    until("b reached a by its dnsrr name over the overlay", 15, reached)
    seconds = time.monotonic() - started
    print(f"service b running on {workers[task_b['NodeID']]}, reached a: {seconds:.2f} s")


@pytest.mark.usefixtures("services")
def test_a_task_reaches_a_server_in_the_host_through_the_host_link(
    swarm_cluster: SwarmCluster, placeholder_image: str
) -> None:
    received: list[bytes] = []
    with socket.create_server((swarm_cluster.host_address, 0)) as server:
        port = server.getsockname()[1]

        def accept() -> None:
            server.settimeout(20)
            connection, _ = server.accept()
            with connection:
                received.append(connection.recv(100))

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        script = (
            f"echo hello from $(hostname) | /bin/busybox nc {swarm_cluster.host_address} {port}"
        )
        _service(swarm_cluster, "to-host", placeholder_image, "/bin/busybox", "sh", "-c", script)
        thread.join(25)
    assert received and received[0].startswith(b"hello from"), received


def test_a_lost_worker_is_reported_down_and_comes_back_ready(swarm_cluster: SwarmCluster) -> None:
    first, last = swarm_cluster.worker_names[0], swarm_cluster.worker_names[-1]
    for name, how in ((last, "stop"), (first, "kill")):
        started = time.monotonic()
        if how == "stop":
            stopping = swarm_cluster.stop_node(name)
        else:
            swarm_cluster.kill_node(name)
            stopping = time.monotonic() - started
        down = swarm_cluster.wait_node_state(name, "down", timeout=20)
        total = time.monotonic() - started
        print(f"{how} {name}: dockerd gone in {stopping:.2f} s, reported down {down:.2f} s later")
        print(f"  ({total:.2f} s after the signal; dispatcher heartbeat 1 s)")
        answering = swarm_cluster.start_node(name)
        ready = swarm_cluster.wait_node_state(name, "ready", timeout=30)
        print(f"start {name}: dockerd answered in {answering:.2f} s, ready {ready:.2f} s later")
    swarm_cluster.wait_ready_nodes()
