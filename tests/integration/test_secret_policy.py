"""Off loopback the service refuses guessable secrets; ``make run`` on loopback still starts.
The refused starts exit before binding anything: no traffic leaves loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.auth import KeyRing, Principal, Role
from orchestrator.config import Settings
from orchestrator.secret_policy import is_loopback, unsafe_secrets
from tests.harness.constants import LIVEKIT_SECRET as STRONG
from tests.harness.service import ServiceProcess, cli_run


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
    # Only Valkey and the data folder are set: the secrets are the service's defaults or `env`.
    service = ServiceProcess("refused", tmp_path, valkey_url, env, harness_env=False)
    done = cli_run(service, "serve", "--host", "0.0.0.0", "--port", "1")
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "refusing to serve on 0.0.0.0" in done.stderr
    for secret in ("short-secret", "admin123", STRONG):
        assert secret not in done.stderr + done.stdout


def test_on_loopback_the_development_defaults_still_serve(tmp_path: Path, valkey_url: str) -> None:
    dev = {"LIVEKIT_API_SECRET": "secret", "CCTV_PUSHERS_ENABLED": None}  # `make run`'s own
    with ServiceProcess("dev", tmp_path, valkey_url, dev) as service:
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
