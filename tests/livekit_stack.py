"""A real ``serve`` process wired to the LiveKit wire fake (tests that need the whole stack).

``stack`` starts the fake, then the service pointing at it, and points the fake's webhooks
back at the service; the service log is printed when the body fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from orchestrator.runtime import CAMERA_LABEL
from tests.fakes.livekit import FakeLiveKit, WebhookPolicy
from tests.livekit_helpers import LIVEKIT_KEY, WEBHOOK_PATH
from tests.service_process import LIVEKIT_SECRET, ServiceProcess

LEASE_S = 6.0
RECONNECT_GRACE_S = 1.5
SYNC_S = 1.0


@dataclass
class Stack:
    fake: FakeLiveKit
    service: ServiceProcess
    http: httpx.AsyncClient


def base_env(**extra: str) -> dict[str, str]:
    return {
        "LIVEKIT_API_KEY": LIVEKIT_KEY,
        "CCTV_LIVEKIT_ENABLED": "true",
        "CCTV_LIVEKIT_SYNC_INTERVAL_SECONDS": str(SYNC_S),
        "CCTV_LIVEKIT_TIMEOUT_SECONDS": "0.5",
        "CCTV_RECONNECT_GRACE_SECONDS": str(RECONNECT_GRACE_S),
        "CCTV_LEASE_SECONDS": str(LEASE_S),
        "CCTV_SWEEP_INTERVAL_SECONDS": "0.2",
        "CCTV_PUSHERS_ENABLED": "false",
        "CCTV_SOURCE_LIMITS": json.dumps({"METRO": 10_000, "TOTAL": 10_000}),
        **extra,
    }


def pusher_env(image: str, **extra: str) -> dict[str, str]:
    defaults = {
        "CCTV_PUSHERS_ENABLED": "true",
        "CCTV_PUSHER_IMAGE": image,
        "CCTV_PUSHER_NETWORK": "host",
        "CCTV_PUSHER_STOP_TIMEOUT_SECONDS": "2",
        "CCTV_DRAIN_GRACE_SECONDS": "1",
        "CCTV_PUSHER_TICK_SECONDS": "0.1",
        "CCTV_RECONCILE_INTERVAL_SECONDS": "1",
        "CCTV_RESTART_INITIAL_SECONDS": "0.5",
        "CCTV_RESTART_MAX_SECONDS": "2",
    }
    return base_env(**{**defaults, **extra})


@contextlib.asynccontextmanager
async def stack(
    tmp: Path, valkey_url: str, env: dict[str, str], *, whip_base_url: str | None = None
) -> AsyncIterator[Stack]:
    """``whip_base_url``: the ingress URL the fake hands out (default: its own WHIP endpoint)."""
    policy = WebhookPolicy(backoff_seconds=0.05)
    fake_lk = FakeLiveKit(
        LIVEKIT_KEY, LIVEKIT_SECRET, webhook_policy=policy, whip_base_url=whip_base_url
    )
    async with fake_lk as fake:
        proc = ServiceProcess("lk", tmp, valkey_url, LIVEKIT_URL=fake.url, **env)
        await asyncio.to_thread(proc.start)
        fake.webhook_url = proc.url + WEBHOOK_PATH
        try:
            async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
                yield Stack(fake, proc, http)
        except BaseException:
            print(f"--- service log ---\n{proc.log_tail(80)}")
            raise
        finally:
            await asyncio.to_thread(proc.stop)


def running_pushers(docker_api: Any, camera_id: str) -> list[dict[str, Any]]:
    label = f"{CAMERA_LABEL}={camera_id}"
    listed = docker_api.api.containers(filters={"label": label, "status": "running"})
    return list(listed)


def container_env(docker_api: Any, container_id: str) -> dict[str, str]:
    env = docker_api.api.inspect_container(container_id)["Config"]["Env"]
    return dict(item.split("=", 1) for item in env)
