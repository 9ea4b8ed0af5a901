"""API fixtures: the real app (lifespan and all) over httpx, against the real Valkey."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from orchestrator.api.app import create_app
from orchestrator.auth import KeyRing, Principal, Role
from orchestrator.config import Settings
from orchestrator.domain.models import Camera
from orchestrator.wiring import Services

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
