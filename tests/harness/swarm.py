"""Helpers for tests that run the service's pushers on the Swarm test cluster
(``tests/cluster``): the service's environment for it, a poller of the manager's view, and
the removal of what a deployment instance left.

The ``swarm_instance`` fixture (``tests/harness/fixtures.py``) gives a test an instance of its
own and removes its services and secrets afterwards.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import docker
import docker.errors

from orchestrator.domain.containers import CAMERA_LABEL, INSTANCE_LABEL
from tests.cluster.swarm import SwarmCluster
from tests.harness.livekit import pusher_env

GRACE_S = 1.0  # CCTV_DRAIN_GRACE_SECONDS of pusher_env
POLL_S = 0.5  # CCTV_SWARM_POLL_SECONDS
RECONCILE_S = 1.0  # CCTV_RECONCILE_INTERVAL_SECONDS of pusher_env
STATIC_WHIP = {
    "CCTV_WHIP_URL": "http://127.0.0.1:9/whip",
    "CCTV_WHIP_TOKEN": "whip-bearer-never-in-a-spec-5c1e",
}


def swarm_env(cluster: SwarmCluster, image: str, instance: str, **extra: str) -> dict[str, str]:
    """:func:`pusher_env` with the Swarm runtime on the cluster's manager."""
    label, wanted = cluster.worker_label
    settings = {
        "CCTV_RUNTIME": "swarm",
        "DOCKER_HOST": cluster.manager_url,
        "CCTV_INSTANCE": instance,
        "CCTV_PUSHER_NETWORK": cluster.network,
        "CCTV_SWARM_CONSTRAINTS": json.dumps([f"node.labels.{label}=={wanted}"]),
        "CCTV_SWARM_POLL_SECONDS": str(POLL_S),
        "CCTV_PUSHER_CPUS": "0.25",
        "CCTV_PUSHER_MEMORY": "64m",
        "CCTV_LEASE_SECONDS": "300",  # no test here heartbeats
    }
    return pusher_env(image, **{**settings, **extra})


class TaskPoller:
    """Reads the manager every ``interval`` in a thread: per camera of ``instance``, the
    services and running tasks; remembers the most of each it ever saw.

    A task counts as running as a replica does in ``docker service ls``: it reports
    ``running``, its desired state is ``running``, and its node is not down. A dead node's task
    keeps its last report (``running``) until the node is back and its agent reports again;
    by then its desired state is ``remove`` (the service replaced it) and the returning daemon
    has stopped its container."""

    def __init__(self, cluster: SwarmCluster, instance: str, interval: float = 0.1) -> None:
        self.instance = instance
        self.interval = interval
        self.api = docker.APIClient(base_url=cluster.manager_url, timeout=30)
        self.most_services = 0
        self.most_running = 0
        self.polls = 0
        self.services: Counter[str] = Counter()
        self.running: dict[str, list[str]] = {}  # camera -> node ids of its running tasks
        self.emptied_at: float | None = None  # when no service was left, after there were
        self.on_poll: Callable[[], None] | None = None  # called after each poll, in the thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _labels(self, spec: dict[str, Any]) -> dict[str, str]:
        return dict(spec.get("Labels") or {})

    def _poll(self) -> None:
        mine = f"{INSTANCE_LABEL}={self.instance}"
        services = self.api.services(filters={"label": mine})
        tasks = self.api.tasks()
        down = {n["ID"] for n in self.api.nodes() if n["Status"]["State"] != "ready"}
        self.services = Counter(self._labels(s["Spec"])[CAMERA_LABEL] for s in services)
        running: dict[str, list[str]] = {}
        for task in tasks:
            labels = self._labels(task["Spec"].get("ContainerSpec") or {})
            if labels.get(INSTANCE_LABEL) != self.instance or task["Status"]["State"] != "running":
                continue
            if task.get("NodeID") in down or task["DesiredState"] != "running":
                continue
            running.setdefault(labels[CAMERA_LABEL], []).append(str(task.get("NodeID")))

        self.running = running
        self.most_services = max([self.most_services, *self.services.values()])
        self.most_running = max([self.most_running, *map(len, running.values())])
        if services:
            self.emptied_at = None
        elif self.emptied_at is None and self.polls:
            self.emptied_at = time.monotonic()
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.interval)

    def one_running_each(self, cameras: list[str]) -> bool:
        return all(self.services[c] == 1 and len(self.running.get(c, [])) == 1 for c in cameras)

    def __enter__(self) -> TaskPoller:
        self._poll()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.api.close()


def remove_instance(cluster: SwarmCluster, name: str) -> None:
    api = cluster.client().api
    mine = {"label": f"{INSTANCE_LABEL}={name}"}
    for service in api.services(filters=mine):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_service(service["ID"])
    deadline = time.monotonic() + 30
    while api.secrets(filters=mine) and time.monotonic() < deadline:
        for secret in api.secrets(filters=mine):
            with contextlib.suppress(docker.errors.APIError):  # in use until its task stops
                api.remove_secret(secret["ID"])
        time.sleep(0.5)


def holds(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``predicate`` as a check for :func:`eventually`."""

    async def check() -> bool:
        return predicate()

    return check
