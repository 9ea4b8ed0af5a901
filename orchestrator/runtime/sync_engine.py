"""The synchronous half of the Docker adapter: docker SDK calls, run only in worker threads.

:class:`~orchestrator.runtime.docker_runtime.DockerRuntime` calls these through
``asyncio.to_thread`` and translates what they raise with :func:`translate`:

* engine unreachable, connection reset, timeout, HTTP 5xx -> ``RuntimeUnavailable`` (temporary)
* any HTTP 4xx (missing image, bad config)                -> ``RuntimeRejected`` (permanent)

A 409 on create is raised here as :class:`NameTaken`, for the caller to turn into
``ContainerConflict``. Containers are created with restart policy ``no``: the engine never
restarts a pusher on its own. Engine messages quoted in errors are redacted against the env values.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import docker
import docker.errors
import docker.utils
import requests
from docker.types import LogConfig

from orchestrator.domain.containers import MANAGED_FILTER, PusherSpec, Workload
from orchestrator.domain.redact import Redactor, url_secrets
from orchestrator.errors import OrchestratorError, RuntimeRejected, RuntimeUnavailable
from orchestrator.runtime.parsing import EVENT_ACTIONS, info_from_inspect, info_from_summary

SDK_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
_EVENT_FILTERS = {"type": "container", "event": list(EVENT_ACTIONS), "label": [MANAGED_FILTER]}


def docker_kwargs(base_url: str | None) -> dict[str, Any]:
    """The client's address and TLS, as the docker CLI reads them (``DOCKER_HOST``,
    ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``); ``base_url`` replaces the address only."""
    kwargs: dict[str, Any] = docker.utils.kwargs_from_env()
    if base_url is not None:
        kwargs["base_url"] = base_url
    return kwargs


class NameTaken(Exception):
    """Create answered 409: a container already holds the deterministic name."""


def _redact(text: str, secrets: Iterable[str]) -> str:
    """URL credentials masked, and each env value (a URL with its secret parts) literally."""
    return Redactor(part for value in secrets for part in url_secrets(value))(text)


def translate(
    op: str, exc: BaseException, secrets: Iterable[str] = (), runtime: str = "docker"
) -> OrchestratorError:
    """Map a docker/requests/OS error to the service's own error type (``runtime`` names the
    dependency of a temporary one: ``docker`` or ``swarm``)."""
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code
        detail = _redact(str(exc.explanation or ""), secrets)
        if status is not None and 400 <= status < 500:
            return RuntimeRejected(
                f"{runtime} {op} refused ({status}): {detail}", status_code=status
            )
        return RuntimeUnavailable(f"{runtime} {op} failed ({status}): {detail}", runtime=runtime)
    return RuntimeUnavailable(
        f"{runtime} engine unreachable during {op} ({type(exc).__name__})", runtime=runtime
    )


class EventStream:
    """A blocking ``GET /events`` stream on a client of its own; ``close`` works from any thread."""

    def __init__(self, api: Any, stream: Any) -> None:
        self._api = api
        self._stream = stream

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for raw in self._stream:
            if isinstance(raw, dict):
                yield raw

    def close(self) -> None:
        with contextlib.suppress(*SDK_ERRORS):
            self._stream.close()  # shuts the socket down: a blocked reader sees the end
        with contextlib.suppress(*SDK_ERRORS):
            self._api.close()


class SyncEngine:
    """One lazily connected ``docker.APIClient``; every method blocks (call it in a thread)."""

    def __init__(
        self,
        base_url: str | None,
        *,
        timeout_seconds: float,
        stop_timeout: int,
        pool_size: int = 32,
        log_max_size: str = "10m",
        log_max_file: int = 3,
    ) -> None:
        self._base_url = base_url
        self._log_config = {"max-size": log_max_size, "max-file": str(log_max_file)}
        self._pool_size = pool_size
        self._timeout = timeout_seconds
        self._stop_timeout = stop_timeout
        self._api: Any = None
        self._lock = threading.Lock()

    def _new_api(self) -> Any:
        """DOCKER_HOST and the TLS variables, like the docker CLI; a given URL wins."""
        return docker.APIClient(
            timeout=self._timeout, max_pool_size=self._pool_size, **docker_kwargs(self._base_url)
        )

    def _client(self) -> Any:
        with self._lock:
            if self._api is None:
                self._api = self._new_api()
            return self._api

    def create_and_start(self, spec: PusherSpec, name: str) -> Workload:
        api = self._client()
        host_config = api.create_host_config(
            restart_policy={"Name": "no"},  # never restart on our own: the lifecycle does
            log_config=LogConfig(type=LogConfig.types.JSON, config=self._log_config),
            mem_limit=spec.memory_bytes,
            nano_cpus=round(spec.cpus * 1_000_000_000),
            network_mode=spec.network,
            init=spec.init,
        )
        try:
            created = api.create_container(
                image=spec.image,
                name=name,
                environment=dict(spec.env),
                labels=spec.labels(),
                host_config=host_config,
                stop_timeout=spec.stop_grace_seconds,
                detach=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise NameTaken(name) from exc
            raise
        try:
            api.start(created["Id"])
        except Exception:
            # Ours (by id) and never started: take it away so the next attempt can create.
            with contextlib.suppress(*SDK_ERRORS):
                api.remove_container(created["Id"], force=True, v=True)
            raise
        return info_from_inspect(api.inspect_container(created["Id"]))

    def inspect(self, ref: str) -> Workload | None:
        try:
            return info_from_inspect(self._client().inspect_container(ref))
        except docker.errors.NotFound:
            return None

    def list_managed(self) -> list[Workload]:
        """Every container with our managed-by label, of any deployment instance."""
        rows = self._client().containers(all=True, filters={"label": [MANAGED_FILTER]})
        return [info_from_summary(row) for row in rows]

    def stop_and_remove(self, container_id: str) -> None:
        """Stop (SIGTERM, then SIGKILL after the stop timeout) and remove, by id."""
        api = self._client()
        try:
            api.stop(container_id, timeout=self._stop_timeout)
            api.remove_container(container_id, v=True, force=True)
        except docker.errors.NotFound:
            return  # already gone: that is what we wanted
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409 here: a removal is already in progress
                raise

    def logs(self, container_id: str, tail: int) -> str:
        """The last ``tail`` lines of a container's stdout and stderr ("" when it is gone)."""
        try:
            raw = self._client().logs(container_id, tail=tail, timestamps=True)
        except docker.errors.NotFound:
            return ""
        return bytes(raw).decode("utf-8", "replace")

    def image_exists(self, ref: str) -> bool:
        try:
            self._client().inspect_image(ref)
        except docker.errors.NotFound:
            return False
        return True

    def ping(self) -> bool:
        return bool(self._client().ping())

    def open_events(self, since: float | None) -> EventStream:
        api = self._new_api()  # a client of its own: the stream holds its connection
        try:
            start = None if since is None else int(since)
            return EventStream(api, api.events(since=start, filters=_EVENT_FILTERS, decode=True))
        except BaseException:
            api.close()
            raise

    def close(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()
