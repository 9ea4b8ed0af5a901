"""Off loopback the service refuses guessable secrets; ``make run`` on loopback still starts
(issue 15). The refused starts exit before binding anything: no traffic leaves loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.auth import KeyRing, Principal, Role
from orchestrator.config import Settings
from orchestrator.secret_policy import is_loopback, unsafe_secrets
from tests.service_process import ServiceProcess

STRONG = "a-livekit-secret-of-more-than-32-bytes-0123"


def serve(tmp: Path, valkey_url: str, host: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CCTV_", "LIVEKIT_"))}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve", "--host", host, "--port", "1"],
        env={**clean, "VALKEY_URL": valkey_url, "CCTV_DATA_DIR": str(tmp), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "LIVEKIT_API_SECRET is LiveKit's development secret"),
        ({"LIVEKIT_API_SECRET": "short-secret"}, "LIVEKIT_API_SECRET is shorter than 32"),
        (
            {"LIVEKIT_API_SECRET": STRONG, "CCTV_ADMIN_API_KEY": "admin123"},
            "CCTV_ADMIN_API_KEY is shorter than 32",
        ),
    ],
    ids=["dev-secret", "short-secret", "short-admin-key"],
)
def test_off_loopback_guessable_secrets_refuse_to_start(
    tmp_path: Path, valkey_url: str, env: dict[str, str], says: str
) -> None:
    done = serve(tmp_path, valkey_url, "0.0.0.0", **env)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "refusing to serve on 0.0.0.0" in done.stderr
    for secret in ("short-secret", "admin123", STRONG):
        assert secret not in done.stderr + done.stdout


def test_on_loopback_the_development_defaults_still_serve(tmp_path: Path, valkey_url: str) -> None:
    with ServiceProcess("dev", tmp_path, valkey_url, LIVEKIT_API_SECRET="secret") as service:
        assert service.process is not None and service.process.poll() is None


def test_the_policy_names_every_weak_secret_and_knows_loopback() -> None:
    ring = KeyRing()
    ring.add_key("k" * 40, Principal("long", Role.VIEWER, frozenset()))
    ring.add_key("k" * 8, Principal("short", Role.VIEWER, frozenset()))
    settings = Settings(livekit_api_secret=STRONG)  # type: ignore[arg-type]
    assert unsafe_secrets(settings, ring) == [
        "API key 'short' (CCTV_API_KEYS_FILE) is shorter than 32 bytes"
    ]
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "orchestrator"]))
