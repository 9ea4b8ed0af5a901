"""``deploy/swarm/stack.yml`` as the real Docker CLI reads it (``docker stack config`` needs no
engine): the file parses, renders with the documented variables, refuses to render without the
required ones, and keeps what a Swarm deployment needs (dnsrr everywhere, no routing mesh, an
attachable pushers' network, secrets from files and no secret in the file).

The images are not pulled and the stack is not deployed (no registry here): what the LiveKit
images do with the variables set below was read from their sources (the tags are named in
deploy/swarm/README.md).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import SECRET_FILE_VARIABLES, Settings
from tests.apt_tools import apt_binaries
from tests.harness.constants import REPO_ROOT

STACK_FILE = REPO_ROOT / "deploy" / "swarm" / "stack.yml"
LIVEKIT_DIR = REPO_ROOT / "deploy" / "livekit"

# What a user sets (deploy/swarm/README.md); the first three are required.
VARIABLES = {
    "REGISTRY": "registry.example.org/cctv",
    "LIVEKIT_NODE_IP": "192.0.2.10",
    "LIVEKIT_PUBLIC_URL": "ws://192.0.2.10:7880",
    "TAG": "1.4.0",
}
# Every variable the file reads: none of them may leak in from the caller's shell.
READ = (*VARIABLES, "LIVEKIT_API_KEY", "CCTV_INSTANCE", "PUSHER_NETWORK")

# Settings read under a name without the CCTV_ prefix (orchestrator/config.py).
UNPREFIXED = {"VALKEY_URL", "LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "DOCKER_HOST"}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|^LIVEKIT_KEYS$|^CCTV_ADMIN_API_KEY$")
LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
INGRESS_KEY_LINES = "grep -Ev '^api_(key|secret):' /etc/ingress.yaml"


def docker_stack_config(**variables: str) -> subprocess.CompletedProcess[str]:
    """``docker stack config -c deploy/swarm/stack.yml`` with exactly ``variables`` set."""
    (docker,) = apt_binaries("docker.io", "docker")
    env = {k: v for k, v in os.environ.items() if k not in READ}
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT"):  # it needs no engine: never name a remote one
        env.pop(name, None)
    env.update(variables)
    return subprocess.run(
        [str(docker), "stack", "config", "-c", str(STACK_FILE)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    result = docker_stack_config(**VARIABLES)
    assert result.returncode == 0, f"docker stack config failed:\n{result.stderr}"
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = stack["services"]
    assert set(found) == {"valkey", "livekit", "ingress", "orchestrator"}
    return found


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def test_every_service_is_dnsrr_with_host_mode_ports_a_healthcheck_and_a_restart_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        deploy = service["deploy"]
        assert deploy["endpoint_mode"] == "dnsrr", f"{name}: a VIP needs IPVS in the kernel"
        assert deploy["restart_policy"]["condition"] == "any", name
        assert service["healthcheck"]["test"], f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert isinstance(port, dict) and port["mode"] == "host", (
                f"{name} publishes {port} through the routing mesh (ingress mode)"
            )
    published = {
        (port["published"], port["protocol"])
        for service in services.values()
        for port in service.get("ports", [])
    }
    assert published == {(7880, "tcp"), (7881, "tcp"), (7882, "udp"), (8086, "tcp")}


def test_the_orchestrator_runs_pushers_on_the_swarm_through_a_managers_socket(
    services: dict[str, dict[str, Any]],
) -> None:
    orchestrator = services["orchestrator"]
    env = _env(orchestrator)
    assert env["CCTV_RUNTIME"] == "swarm"
    assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    mounts = {(m["type"], m.get("source"), m["target"]) for m in orchestrator["volumes"]}
    assert ("bind", "/var/run/docker.sock", "/var/run/docker.sock") in mounts
    deploy = orchestrator["deploy"]
    assert deploy["replicas"] == 2
    assert "node.role == manager" in deploy["placement"]["constraints"]
    assert deploy["resources"]["reservations"] and deploy["resources"]["limits"]
    assert "/health" in " ".join(orchestrator["healthcheck"]["test"])
    assert orchestrator["image"] == "registry.example.org/cctv/cctv-orchestrator:1.4.0"
    assert env["CCTV_PUSHER_IMAGE"] == "registry.example.org/cctv/cctv-whip-pusher:1.4.0"
    assert env["CCTV_SWARM_CONSTRAINTS"] == '["node.labels.cctv.pushers==true"]'
    assert env["VALKEY_URL"] == "redis://valkey:6379/0"
    assert env["LIVEKIT_URL"] == "http://livekit:7880"
    assert env["CCTV_LIVEKIT_PUBLIC_URL"] == VARIABLES["LIVEKIT_PUBLIC_URL"]
    assert services["livekit"]["stop_grace_period"]
    assert _env(services["livekit"])["NODE_IP"] == VARIABLES["LIVEKIT_NODE_IP"]


def test_the_pushers_network_is_an_attachable_overlay_named_in_the_orchestrators_settings(
    stack: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    networks = stack["networks"]
    attachable = [key for key, net in networks.items() if net.get("attachable")]
    assert attachable == ["pushers"], "exactly one attachable network: the pushers'"
    pushers = networks["pushers"]
    assert pushers["driver"] == "overlay"
    # An explicit name: the stack would otherwise prefix it (cctv_pushers).
    assert pushers["name"] == _env(services["orchestrator"])["CCTV_PUSHER_NETWORK"]
    for name in ("orchestrator", "livekit", "ingress"):
        assert "pushers" in services[name]["networks"], f"{name} is not on the pushers' network"
    assert "pushers" not in services["valkey"]["networks"], "pushers would reach Valkey"


def test_the_secrets_are_external_and_the_orchestrator_reads_them_from_files(
    stack: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = stack["secrets"]
    assert {key: s["name"] for key, s in declared.items()} == {
        "admin_api_key": "cctv_admin_api_key",
        "livekit_api_secret": "cctv_livekit_api_secret",
    }
    for key, secret in declared.items():
        # Created with `docker secret create`: nothing of it is in the repository.
        assert secret == {"name": secret["name"], "external": True}, key
    orchestrator = services["orchestrator"]
    mounted = {s["source"]: s for s in orchestrator["secrets"]}
    assert set(mounted) == set(declared), "the orchestrator uses every secret"
    env = _env(orchestrator)
    targets = {f"/run/secrets/{s['target']}" for s in mounted.values()}
    assert {env.get(name) for name in SECRET_FILE_VARIABLES} == targets
    for name, (plain, _) in SECRET_FILE_VARIABLES.items():
        assert plain not in env, f"{plain} would be a secret in the service spec; use {name}"
    uid = str(orchestrator["user"]).split(":", 1)[0]
    for secret in mounted.values():
        assert secret["uid"] == uid and secret["mode"] == 0o400, secret
    for name in ("livekit", "ingress"):
        [used] = services[name]["secrets"]
        assert used["source"] == "livekit_api_secret" and used["mode"] == 0o400


def test_no_secret_value_is_in_the_file(services: dict[str, dict[str, Any]]) -> None:
    text = STACK_FILE.read_text(encoding="utf-8")
    development = [
        yaml.safe_load((LIVEKIT_DIR / "ingress.yaml").read_text())["api_secret"],
        *yaml.safe_load((LIVEKIT_DIR / "livekit.yaml").read_text())["keys"].values(),
    ]
    for secret in development:
        assert secret not in text, "deploy/livekit's development secret is in the stack file"
    for service_name, service in services.items():
        for name, value in _env(service).items():
            if SECRET_NAME.search(name):
                assert name.endswith("_FILE") and value.startswith("/run/secrets/"), (
                    f"{service_name}: {name} carries a secret in the service spec"
                )
            elif not value.startswith("/run/secrets/"):
                assert not LONG_TOKEN.search(value), f"{service_name}: {name} looks like a key"
        for label in (service["deploy"].get("labels") or {}).values():
            assert not LONG_TOKEN.search(str(label)), f"{service_name}: a label looks like a key"


def test_livekit_and_the_ingress_share_the_key_and_drop_the_files_development_pair(
    services: dict[str, dict[str, Any]],
) -> None:
    livekit, ingress = services["livekit"], services["ingress"]
    key = _env(services["orchestrator"])["LIVEKIT_API_KEY"]
    # Webhooks are signed with webhook.api_key's secret and verified with the orchestrator's key.
    assert _env(livekit)["LIVEKIT_WEBHOOK_API_KEY"] == key
    assert _env(ingress)["LIVEKIT_API_KEY"] == key
    # LIVEKIT_KEYS replaces the file's `keys:`; a key_file would add its pairs back.
    script = livekit["command"][0]
    assert 'export LIVEKIT_KEYS="$LIVEKIT_WEBHOOK_API_KEY:' in script
    assert "cat /run/secrets/livekit_api_secret" in script
    server_file = yaml.safe_load((LIVEKIT_DIR / "livekit.yaml").read_text())
    assert "key_file" not in server_file
    assert server_file["webhook"]["api_key"], "the override needs the key it replaces"
    # The ingress reads its file after the variables: its key lines are dropped at start.
    assert INGRESS_KEY_LINES in ingress["command"][0]
    lines = (LIVEKIT_DIR / "ingress.yaml").read_text().splitlines()
    kept = yaml.safe_load("\n".join(li for li in lines if not re.match(r"^api_(key|secret):", li)))
    assert "api_key" not in kept and "api_secret" not in kept
    assert kept["ws_url"] == "ws://livekit:7880" and kept["whip_port"] == 8080


def test_the_config_files_are_the_ones_docker_compose_uses(stack: dict[str, Any]) -> None:
    files = {key: Path(config["file"]) for key, config in stack["configs"].items()}
    assert files == {
        "livekit_config": LIVEKIT_DIR / "livekit.yaml",
        "ingress_config": LIVEKIT_DIR / "ingress.yaml",
    }
    assert all(path.is_file() for path in files.values())


def test_the_orchestrators_environment_is_settings_it_reads(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(services["orchestrator"])
    fields = set(Settings.model_fields)
    for name in env:
        known = (
            name in UNPREFIXED
            or name in SECRET_FILE_VARIABLES
            or (name.startswith("CCTV_") and name.removeprefix("CCTV_").lower() in fields)
        )
        assert known, f"{name} is no setting of orchestrator/config.py"
    for name in [*os.environ]:
        if name.startswith("CCTV_") or name in UNPREFIXED:
            monkeypatch.delenv(name)
    secrets = {}
    for name, value in env.items():
        if name in SECRET_FILE_VARIABLES:  # the Swarm secrets, stood in for by files
            path = tmp_path / Path(value).name
            secrets[name] = f"{path.name}-0123456789abcdef0123456789abcdef"
            path.write_text(secrets[name] + "\n", encoding="utf-8")
            value = str(path)
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.runtime == "swarm"
    assert settings.pusher_network == "cctv-pushers"
    assert settings.swarm_constraints == ["node.labels.cctv.pushers==true"]
    assert settings.browser_livekit_url == VARIABLES["LIVEKIT_PUBLIC_URL"]
    assert settings.admin_api_key is not None
    assert settings.admin_api_key.get_secret_value() == secrets["CCTV_ADMIN_API_KEY_FILE"]
    assert settings.livekit_api_secret.get_secret_value() == secrets["LIVEKIT_API_SECRET_FILE"]


@pytest.mark.parametrize("missing", ["REGISTRY", "LIVEKIT_NODE_IP", "LIVEKIT_PUBLIC_URL"])
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_a_missing_required_variable_fails_and_names_it(missing: str, how: str) -> None:
    variables = {k: v for k, v in VARIABLES.items() if k != missing}
    if how == "empty":
        variables[missing] = ""
    result = docker_stack_config(**variables)
    assert result.returncode != 0, f"rendered without {missing}:\n{result.stdout}"
    assert f"required variable {missing} is missing a value: set {missing}" in result.stderr


def test_tag_defaults_to_latest() -> None:
    result = docker_stack_config(**{k: v for k, v in VARIABLES.items() if k != "TAG"})
    assert result.returncode == 0, result.stderr
    orchestrator = yaml.safe_load(result.stdout)["services"]["orchestrator"]
    assert orchestrator["image"] == "registry.example.org/cctv/cctv-orchestrator:latest"
    assert _env(orchestrator)["CCTV_PUSHER_IMAGE"].endswith("/cctv-whip-pusher:latest")
