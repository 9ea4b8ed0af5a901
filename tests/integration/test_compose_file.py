"""``docker-compose.yml`` as Debian's ``docker-compose`` client reads it (``config`` needs no
engine): the file parses, and the settings the issue-14 review asked for are in it."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import yaml

from tests.apt_tools import apt_binaries
from tests.harness.constants import REPO_ROOT


def compose_config() -> dict[str, Any]:
    (compose,) = apt_binaries("docker-compose", "docker-compose")
    env = {**os.environ, "CCTV_ADMIN_API_KEY": "compose-check-admin-key"}
    result = subprocess.run(
        [str(compose), "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_config_passes_and_keeps_what_a_real_deployment_needs() -> None:
    services = compose_config()["services"]
    orchestrator, livekit = services["orchestrator"], services["livekit"]
    env = orchestrator["environment"]
    assert env["LIVEKIT_URL"] == "http://livekit:7880"  # the API, inside the network
    assert env["CCTV_LIVEKIT_PUBLIC_URL"].startswith("ws://127.0.0.1:")  # the browsers'
    assert "NODE_IP" in livekit["environment"]  # reachable ICE candidates
    assert livekit["stop_grace_period"]
    for name in ("valkey", "livekit", "orchestrator"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    conditions = {dep: spec["condition"] for dep, spec in orchestrator["depends_on"].items()}
    assert conditions["valkey"] == "service_healthy"
    assert conditions["livekit"] == "service_healthy"
    mounts = [str(v) for v in orchestrator.get("volumes", [])]
    assert not any("docker.sock" in m for m in mounts), "the orchestrator holds the socket"
    assert env["DOCKER_HOST"].startswith("tcp://")
