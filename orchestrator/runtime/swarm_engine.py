"""The synchronous half of the Swarm adapter: docker SDK calls to a manager, run only in
worker threads (``swarm_runtime.SwarmRuntime`` calls these and translates their errors with
``sync_engine.translate``).

A pusher is a service of 1 replica with restart condition ``none`` (the orchestrator owns
restarts and their backoff), ``init`` on, the ``dnsrr`` endpoint mode (no service VIP: it
needs IPVS, and a pusher is never called), resource limits and reservations, placement
constraints and preferences from settings, and the network it is given.

Its env (camera credentials, the WHIP token) never enters the service spec: it is a Swarm
secret of its own (``whip-pusher-….<generation>.<random>``, labelled like the service), mounted
at ``/run/secrets/pusher.env``; the spec's env only says where (``PUSHER_ENV_FILE``). The
secret goes with its service; one left behind by a crash is collected later
(:meth:`SwarmEngine.collect_secrets`).
"""

from __future__ import annotations

import contextlib
import secrets as random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import docker.errors
import docker.utils
from docker.types import (
    ContainerSpec,
    EndpointSpec,
    NetworkAttachmentConfig,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)

from orchestrator.domain.containers import (
    CAMERA_LABEL,
    DEFAULT_INSTANCE,
    INSTANCE_LABEL,
    MANAGED_FILTER,
    PusherSpec,
    Workload,
)
from orchestrator.runtime.swarm_model import (
    ENV_FILE_TARGET,
    ENV_FILE_VARIABLE,
    env_file,
    node_states,
    parse_time,
    still_held,
    tasks_by_service,
    workload_of,
)
from orchestrator.runtime.sync_engine import SDK_ERRORS, NameTaken, docker_kwargs

# Networks that name a single engine's modes: a service cannot join them, so none is attached.
LOCAL_NETWORKS = frozenset({"bridge", "none", "host", "default"})
SECRET_GRACE = timedelta(minutes=2)  # an unreferenced secret younger than this may be in use soon
# The env file belongs to the pusher image's user (``USER 65534:65534``, nobody), read-only;
# root (as in the test images) reads it too.
ENV_FILE_OWNER = "65534"


@dataclass(frozen=True)
class SwarmOptions:
    """Where and how services are placed (settings ``CCTV_SWARM_*``)."""

    constraints: Sequence[str] = ()
    preferences: Sequence[str] = ()  # "spread=node.labels.zone"
    cpus_reserved: float = 0.0
    memory_reserved_bytes: int = 0


def secret_name_for(service: str, generation: int) -> str:
    """A fresh name for a service's env secret (Swarm allows 64 characters): the service
    name cut to 40, the generation, 8 random hex digits."""
    return f"{service[:40].rstrip('-_.')}.{generation}.{random.token_hex(4)}"


class SwarmEngine:
    """One lazily connected ``docker.APIClient`` on a manager; every method blocks."""

    def __init__(
        self,
        base_url: str | None,
        *,
        timeout_seconds: float,
        options: SwarmOptions,
        pool_size: int = 32,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout_seconds
        self._pool_size = pool_size
        self.options = options
        self._api: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._api is None:
                self._api = docker.APIClient(
                    timeout=self._timeout,
                    max_pool_size=self._pool_size,
                    **docker_kwargs(self._base_url),
                )
            return self._api

    # --- create ---------------------------------------------------------------------------

    def _task_template(self, spec: PusherSpec, secret_id: str, secret_name: str) -> Any:
        o = self.options
        container = ContainerSpec(
            spec.image,
            env={ENV_FILE_VARIABLE: f"/run/secrets/{ENV_FILE_TARGET}"},
            labels=spec.labels(),
            init=spec.init,
            stop_grace_period=spec.stop_grace_seconds * 1_000_000_000,
            secrets=[
                SecretReference(
                    secret_id,
                    secret_name,
                    filename=ENV_FILE_TARGET,
                    uid=ENV_FILE_OWNER,
                    gid=ENV_FILE_OWNER,
                    mode=0o400,
                )
            ],
        )
        preferences = [tuple(p.split("=", 1)) for p in o.preferences]
        return TaskTemplate(
            container,
            resources=Resources(
                cpu_limit=round(spec.cpus * 1e9),
                mem_limit=spec.memory_bytes,
                cpu_reservation=round(o.cpus_reserved * 1e9) or None,
                mem_reservation=o.memory_reserved_bytes or None,
            ),
            restart_policy=RestartPolicy(condition="none"),  # the lifecycle restarts
            placement=Placement(constraints=list(o.constraints) or None, preferences=preferences),
            networks=None
            if spec.network in LOCAL_NETWORKS
            else [NetworkAttachmentConfig(spec.network)],
        )

    def create(self, spec: PusherSpec, name: str) -> Workload:
        """Create the service (and its env secret). ``NameTaken`` on 409; nothing is left
        behind by a refused create."""
        api = self._client()
        secret_name = secret_name_for(name, spec.generation)
        created_secret = api.create_secret(secret_name, env_file(spec.env), labels=spec.labels())
        secret_id = str(created_secret["ID"])
        try:
            created = api.create_service(
                self._task_template(spec, secret_id, secret_name),
                name=name,
                labels=spec.labels(),
                mode=ServiceMode("replicated", 1),
                endpoint_spec=EndpointSpec(mode="dnsrr"),
            )
        except BaseException as exc:
            with contextlib.suppress(*SDK_ERRORS):
                api.remove_secret(secret_id)
            if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
                raise NameTaken(name) from exc
            raise
        return workload_of(api.inspect_service(created["ID"]), [], {})

    # --- read -------------------------------------------------------------------------------

    def inspect(self, name: str) -> Workload | None:
        api = self._client()
        try:
            service = api.inspect_service(name)
            tasks = api.tasks(filters={"service": service["ID"]})
        except docker.errors.NotFound:
            return None
        found = []
        for node in {str(t["NodeID"]) for t in tasks if t.get("NodeID")}:
            with contextlib.suppress(docker.errors.NotFound):  # gone: counts as unknown
                found.append(api.inspect_node(node))
        return workload_of(service, tasks, node_states(found))

    def snapshot(self) -> list[Workload]:
        """Every managed service (of every instance) as a workload: three requests, whatever
        the number of pushers."""
        api = self._client()
        services = api.services(filters={"label": MANAGED_FILTER})
        if not services:
            return []
        grouped = tasks_by_service(api.tasks())
        states = node_states(api.nodes())
        return [workload_of(s, grouped.get(str(s["ID"]), []), states) for s in services]

    # --- remove -------------------------------------------------------------------------------

    def remove(self, service_id: str, wait_seconds: float) -> bool:
        """Remove the service, wait (up to ``wait_seconds``) until none of its tasks runs on a
        node that is up, then remove its env secret. False when the wait ran out."""
        api = self._client()
        try:
            service = api.inspect_service(service_id)
        except docker.errors.NotFound:
            return True  # already gone: that is what we wanted
        refs = (service.get("Spec") or {}).get("TaskTemplate", {}).get("ContainerSpec", {})
        secret_ids = [str(s["SecretID"]) for s in refs.get("Secrets") or []]
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_service(service_id)
        deadline = time.monotonic() + wait_seconds
        while still_held(api.tasks(), service_id, node_states(api.nodes())):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        for secret_id in secret_ids:
            with contextlib.suppress(docker.errors.APIError):  # gone, or still in use: the sweep
                api.remove_secret(secret_id)
        return True

    def collect_secrets(self, instance: str, grace: timedelta = SECRET_GRACE) -> int:
        """Remove this instance's env secrets that no service uses (a crash between creating
        one and its service, or between removing a service and its secret). Young ones are
        kept: their service may be being created."""
        api = self._client()
        used = {
            str(ref["SecretID"])
            for s in api.services(filters={"label": MANAGED_FILTER})
            for ref in s["Spec"]["TaskTemplate"].get("ContainerSpec", {}).get("Secrets") or []
        }
        removed = 0
        now = datetime.now(UTC)
        for secret in api.secrets(filters={"label": [MANAGED_FILTER, CAMERA_LABEL]}):
            labels = secret["Spec"].get("Labels") or {}
            if (labels.get(INSTANCE_LABEL) or DEFAULT_INSTANCE) != instance:
                continue
            created = parse_time(secret.get("CreatedAt"))
            if secret["ID"] in used or created is None or now - created < grace:
                continue
            try:
                api.remove_secret(secret["ID"])
                removed += 1
            except docker.errors.APIError:
                continue  # in use after all, or gone: the next pass looks again
        return removed

    def logs(self, service_id: str, tail: int) -> str:
        try:
            chunks = self._client().service_logs(
                service_id, stdout=True, stderr=True, tail=tail, timestamps=True
            )
            raw = b"".join(chunks)
        except docker.errors.NotFound:
            return ""
        return raw.decode("utf-8", "replace")

    def ping(self) -> bool:
        """The manager answers and is a manager (a worker cannot list services)."""
        api = self._client()
        return bool(api.ping()) and bool(api.info().get("Swarm", {}).get("ControlAvailable"))

    def close(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()
