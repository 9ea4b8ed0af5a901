"""The Swarm adapter's pure parts: service names, task states as phases, the env file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cctv_pusher.config import ConfigError, PusherConfig, with_env_file
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.containers import Phase
from orchestrator.runtime.swarm_model import (
    NodeStatus,
    env_file,
    service_name,
    still_held,
    workload_of,
)

SERVICE_NAME = re.compile(r"^[A-Za-z0-9](?:[-_]*[A-Za-z0-9]+)*$")  # what Swarm accepts
CAMERA_IDS = st.from_regex(r"\A[A-Za-z0-9._-]{1,64}\Z")


@pytest.mark.parametrize("camera_id", ["cam1", "lobby_2", "gate-7", "a"])
def test_a_plain_id_keeps_the_plain_name(camera_id: str) -> None:
    assert service_name(camera_id) == f"whip-pusher-{camera_id}"


@given(CAMERA_IDS, CAMERA_IDS)
def test_every_id_gets_a_valid_name_of_its_own(a: str, b: str) -> None:
    for camera_id in (a, b):
        name = service_name(camera_id)
        assert len(name) <= 63 and SERVICE_NAME.fullmatch(name), name
    if a != b:  # Swarm compares names without case
        assert service_name(a).lower() != service_name(b).lower()


def test_ids_swarm_would_refuse_or_confuse_are_hashed() -> None:
    for camera_id in ("Cam.1", "CAM1", "x" * 64, "a--b", "end_", "-x"):
        assert "--" in service_name(camera_id), camera_id


def task(state: str, node: str = "n1", exit_code: int = 0, created: str = "1") -> dict[str, Any]:
    status = {"State": state, "ContainerStatus": {"ExitCode": exit_code}}
    return {"ServiceID": "s1", "NodeID": node, "Status": status, "CreatedAt": created}


SERVICE = {
    "ID": "s1",
    "Spec": {
        "Name": "whip-pusher-cam1",
        "Labels": {
            "cctv.orchestrator/managed-by": "cctv-orchestrator",
            "cctv.orchestrator/camera": "cam1",
            "cctv.orchestrator/generation": "4",
            "cctv.orchestrator/instance": "blue",
        },
    },
}


READY = NodeStatus("ready", "active", "worker-1")
DOWN = NodeStatus("down", "active", "worker-1")
DRAINED = NodeStatus("ready", "drain", "worker-1")
NO_ROOM = "no suitable node (insufficient resources on 2 nodes)"


@pytest.mark.parametrize(
    ("tasks", "node", "phase", "exit_code", "displaced"),
    [
        ([], None, Phase.PENDING, None, False),
        ([task("assigned")], READY, Phase.PENDING, None, False),
        ([task("running")], READY, Phase.RUNNING, None, False),
        ([task("running")], DOWN, Phase.LOST, None, True),  # a dead node's last report
        ([task("running")], None, Phase.LOST, None, True),  # a node the manager no longer lists
        ([task("shutdown")], DRAINED, Phase.LOST, None, True),  # Swarm took it off a drain
        ([task("running")], DRAINED, Phase.LOST, None, True),  # being taken off
        ([task("failed", exit_code=137)], READY, Phase.EXITED, 137, False),
        ([task("complete")], READY, Phase.EXITED, 0, False),
        ([task("rejected")], READY, Phase.LOST, None, False),  # no such image: not displaced
        (
            [task("failed", created="1"), task("running", created="2")],
            READY,
            Phase.RUNNING,
            None,
            False,
        ),
    ],
)
def test_the_newest_task_gives_the_phase(
    tasks: list[dict[str, Any]],
    node: NodeStatus | None,
    phase: Phase,
    exit_code: int | None,
    displaced: bool,
) -> None:
    w = workload_of(SERVICE, tasks, {"n1": node} if node else {})
    assert (w.phase, w.exit_code, w.displaced) == (phase, exit_code, displaced)
    assert (w.ref, w.camera_id, w.generation, w.instance, w.managed) == (
        "s1",
        "cam1",
        4,
        "blue",
        True,
    )
    assert w.node == ("worker-1" if tasks and node else None)


def test_a_task_no_node_has_room_for_waits_with_the_schedulers_reason() -> None:
    pending = {"ServiceID": "s1", "Status": {"State": "pending", "Err": NO_ROOM}, "CreatedAt": "1"}
    w = workload_of(SERVICE, [pending], {})
    assert (w.phase, w.waiting, w.node) == (Phase.PENDING, NO_ROOM, None)
    assert workload_of(SERVICE, [task("running")], {"n1": READY}).waiting is None


def test_a_removal_waits_only_for_tasks_that_may_still_run() -> None:
    nodes = {"n1": READY, "n2": DOWN}
    assert still_held([task("running")], "s1", nodes) == 1
    assert still_held([task("running", node="n2")], "s1", nodes) == 0  # its node is down
    assert still_held([task("shutdown")], "s1", nodes) == 0
    assert still_held([task("running")], "other", nodes) == 0


ENV = {
    "RTSP_URL": "rtsp://user:p'a$s w\"o`rd@cam.invalid/s?x=1&y=2",
    "WHIP_URL": "http://ingress.invalid/w",
    "WHIP_TOKEN": "tok'en with\nnewline",
    "CAMERA_ID": "cam1",
}


def test_the_env_file_reads_back_in_the_pusher_and_in_sh(tmp_path: Path) -> None:
    path = tmp_path / "pusher.env"
    path.write_bytes(env_file(ENV))
    merged = with_env_file({"PUSHER_ENV_FILE": str(path), "RTSP_URL": "rtsp://old.invalid/"})
    assert {k: merged[k] for k in ENV} == ENV
    config = PusherConfig.from_env({"PUSHER_ENV_FILE": str(path)})
    assert (config.rtsp_url, config.whip_token) == (ENV["RTSP_URL"], ENV["WHIP_TOKEN"])
    for name, value in ENV.items():  # the test images' busybox sh sources it
        script = f'set -a; . "{path}"; printf %s "${name}"'
        shell = subprocess.run(["busybox", "sh", "-c", script], capture_output=True, check=True)
        assert shell.stdout.decode() == value


def test_an_unreadable_env_file_is_a_config_error_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("RTSP_URL='rtsp://u:secret@x/\n")  # unbalanced quote
    with pytest.raises(ConfigError) as raised:
        PusherConfig.from_env({"PUSHER_ENV_FILE": str(path)})
    assert "secret" not in str(raised.value)
    with pytest.raises(ConfigError):
        PusherConfig.from_env({"PUSHER_ENV_FILE": str(tmp_path / "missing")})


def test_each_secret_can_come_from_a_file_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "rtsp").write_text(ENV["RTSP_URL"] + "\n")
    (tmp_path / "token").write_text(ENV["WHIP_TOKEN"])
    config = PusherConfig.from_env(
        {
            "RTSP_URL_FILE": str(tmp_path / "rtsp"),
            "WHIP_TOKEN_FILE": str(tmp_path / "token"),
            "WHIP_URL": ENV["WHIP_URL"],
        }
    )
    assert (config.rtsp_url, config.whip_token) == (ENV["RTSP_URL"], ENV["WHIP_TOKEN"])
    with pytest.raises(ConfigError, match="not both"):
        PusherConfig.from_env(
            {
                "RTSP_URL_FILE": str(tmp_path / "rtsp"),
                "RTSP_URL": "rtsp://x/",
                "WHIP_URL": "http://w/",
            }
        )
    with pytest.raises(ConfigError) as raised:
        PusherConfig.from_env({"RTSP_URL_FILE": str(tmp_path / "none"), "WHIP_URL": "http://w/"})
    assert "p'a$s" not in str(raised.value)
