"""The service in-process: ``create_app`` with the harness's settings, driven through its
lifespan in the test's event loop and called over ASGI (``httpx.ASGITransport``), so a test can
reach into its services; or, for clients that need a URL, under uvicorn in a thread.

Its keys come from the same keys file as the subprocess's (:func:`settings`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from orchestrator.api.app import create_app
from orchestrator.config import Settings
from orchestrator.wiring import Services
from tests.harness.constants import ADMIN_KEY, LIVEKIT_KEY, LIVEKIT_SECRET
from tests.harness.http import reserve
from tests.harness.service import free_port, write_api_keys
from tests.harness.store import add_cameras

_KEYS_DIR = Path(tempfile.gettempdir()) / f"cctv-test-keys-{os.getpid()}"


def _keys_file() -> Path:
    if not _KEYS_DIR.exists():
        _KEYS_DIR.mkdir()
        atexit.register(shutil.rmtree, _KEYS_DIR, ignore_errors=True)
    return write_api_keys(_KEYS_DIR)


def app_settings(valkey_url: str, **overrides: object) -> Settings:
    """What the in-process app runs with: the harness's keys and LiveKit credentials, no
    containers (the lifecycle tests enable them), no LiveKit server (tokens only) and stats
    read for each request."""
    values: dict[str, object] = {
        "valkey_url": valkey_url,
        "api_keys_file": _keys_file(),
        "livekit_url": "ws://127.0.0.1:7880",
        "livekit_api_key": LIVEKIT_KEY,
        "livekit_api_secret": SecretStr(LIVEKIT_SECRET),
        "sweep_interval_seconds": 0.2,
        "pushers_enabled": False,
        "livekit_enabled": False,
        # Tests read stats right after they act; the shared snapshot has tests of its own.
        "stats_max_age_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class App:
    """The running app and an ASGI client of it."""

    app: FastAPI
    http: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def add_camera(self, camera_id: str, *, enabled: bool = True) -> None:
        await add_cameras(self.services.registry, camera_id, enabled=enabled)

    async def reserve(self, camera_id: str, source: str, key: str = ADMIN_KEY) -> httpx.Response:
        return await reserve(self.http, camera_id, source, key=key)


@contextlib.asynccontextmanager
async def open_app(config: Settings) -> AsyncIterator[App]:
    """The app's lifespan in this event loop; requests over ASGI."""
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield App(app, http)


@contextlib.contextmanager
def served_app(config: Settings) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1 in a background thread (its own event loop and
    lifespan); its URL once ``/health`` answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not _answers(url):
            assert time.monotonic() < deadline, f"the app did not answer on {url} within 20 s"
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
