"""Integration fixtures: the real app over httpx against the real Valkey, and the real
Docker engine with locally built images (failing, never skipping, when it does not answer)."""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from orchestrator.api.app import create_app
from orchestrator.auth import KeyRing, Principal, Role
from orchestrator.config import Settings
from orchestrator.domain.models import Camera
from orchestrator.wiring import Services
from tests.images import (
    build_placeholder_pusher_image,
    build_valkey_image,
    build_whip_pusher_image,
    sweep,
    with_test_label,
)
from tests.media.pusher_image import ensure_pusher_image
from tests.media.rig import MediaRig, media_rig

LIVEKIT_KEY = "test-api-key"
LIVEKIT_SECRET = "test-secret-that-is-at-least-32-bytes-long"
ADMIN_KEY = "admin-key-0123456789abcdef0123456789"
METRO_KEY = "metro-key-0123456789abcdef0123456789"
POLICE_KEY = "police-key-0123456789abcdef012345678"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_keyring() -> KeyRing:
    ring = KeyRing()
    ring.add_key(ADMIN_KEY, Principal("admin", Role.ADMIN, frozenset()))
    ring.add_key(METRO_KEY, Principal("metro-dashboard", Role.VIEWER, frozenset({"METRO"})))
    ring.add_key(
        POLICE_KEY, Principal("police-dashboard", Role.VIEWER, frozenset({"DUBAI_POLICE"}))
    )
    return ring


def make_settings(valkey_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "valkey_url": valkey_url,
        "livekit_url": "ws://127.0.0.1:7880",
        "livekit_api_key": LIVEKIT_KEY,
        "livekit_api_secret": SecretStr(LIVEKIT_SECRET),
        "sweep_interval_seconds": 0.2,
        "pushers_enabled": False,  # API tests: no containers (the lifecycle tests enable it)
        "livekit_enabled": False,  # no LiveKit server: tokens only (the LiveKit tests enable it)
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Api:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def add_camera(self, camera_id: str, *, enabled: bool = True) -> None:
        await self.services.registry.put(
            Camera(camera_id, f"Camera {camera_id}", f"rtsp://127.0.0.1/{camera_id}", enabled)
        )

    async def reserve(self, camera_id: str, source: str, key: str = ADMIN_KEY) -> httpx.Response:
        body = {"camera_id": camera_id, "user_id": "operator-1", "source": source}
        return await self.http.post("/api/v1/stream/reserve", json=body, headers=auth(key))


async def open_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings, keyring=make_keyring())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Api(app, http)


@pytest.fixture
async def api(valkey_url: str, client: object) -> AsyncIterator[Api]:
    """The app on a freshly flushed Valkey (``client`` flushes it)."""
    async for value in open_api(make_settings(valkey_url)):
        yield value


@pytest.fixture
def swept(docker_api: Any) -> Iterator[None]:
    """Remove every test container after the test (``usefixtures("swept")``)."""
    yield
    sweep(docker_api)


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    """The engine for the whole session; fails (never skips) when it does not answer."""
    client: Any = None
    reason = ""
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        reason = f"Docker engine at {host} is not reachable ({exc})"
    if reason:
        if client is not None:
            client.close()
        with warnings.catch_warnings():  # the SDK leaves its failed socket to the collector
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        pytest.fail(f"{reason}; start one with `bash scripts/ensure-docker.sh`", pytrace=False)
    sweep(client)  # leftovers of an interrupted run
    yield client
    sweep(client)
    client.close()


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
    return with_test_label(docker_api, ensure_pusher_image(docker_api))


@pytest.fixture
def rig(docker_api: Any, pusher_image: str, tmp_path: Path) -> Iterator[MediaRig]:
    """A loopback-only lab network with a camera simulator and a WHIP receiver in it."""
    with media_rig(docker_api, pusher_image, tmp_path / "media") as started:
        yield started
