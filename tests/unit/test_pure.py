"""Pure logic: identifiers, lease members, redaction, key files, JSON logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from orchestrator.auth import KeyRing, Role, digest
from orchestrator.domain import ids
from orchestrator.domain.models import Lease
from orchestrator.domain.redact import redact_url
from orchestrator.errors import InvalidInput
from orchestrator.logs import JsonFormatter
from orchestrator.store import keys
from orchestrator.store.cameras import load_cameras_file


@pytest.mark.parametrize("value", ["cam-001", "A.b_c-9", "x" * 64])
def test_valid_ids(value: str) -> None:
    assert ids.validate_camera_id(value) == value


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "a|b", "a:b", "a/b", "é", "a*"])
def test_invalid_ids_never_reach_a_key(value: str) -> None:
    with pytest.raises(InvalidInput):
        ids.validate_camera_id(value)
    with pytest.raises(InvalidInput):
        ids.validate_source(value)


def test_names_other_systems_rely_on() -> None:
    rid = ids.new_reservation_id()
    assert len(rid) >= 22 and ids.validate_reservation_id(rid) == rid
    assert ids.viewer_identity(rid) == f"viewer_{rid}"
    assert ids.room_name("cam-1") == "camera_cam-1"
    assert ids.publisher_identity("cam-1") == "camera_cam-1_publisher"
    assert ids.container_name("cam-1") == "whip-pusher-cam-1"
    assert keys.reservation(rid) == f"stream:reservation:{rid}"
    assert keys.count("METRO") == "stream:count:METRO"
    assert keys.limit("TOTAL") == keys.TOTAL_LIMIT == "stream:limit:TOTAL"
    assert keys.metadata("cam-1") == "stream:metadata:cam-1"


def test_lease_member_round_trip() -> None:
    lease = Lease("AbC_-123456789012345678", "cam.1", "DUBAI_POLICE")
    assert Lease.parse(lease.member) == lease
    assert keys.lease_keys(lease)[0] == "stream:reservation:AbC_-123456789012345678"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:pw@10.0.0.1:554/s1?token=x", "rtsp://***@10.0.0.1:554/s1"),
        ("rtsp://10.0.0.1/s1", "rtsp://10.0.0.1/s1"),
        ("rtsp://user@[::1]:8554/a", "rtsp://***@[::1]:8554/a"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_key_file_holds_digests_roles_and_sources(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"- name: metro\n  role: viewer\n  sources: [METRO]\n  key_sha256: {digest('k1')}\n"
        "- name: ops\n  role: admin\n  key: k2\n"
    )
    ring = KeyRing()
    assert ring.load_file(path) == 2
    metro = ring.authenticate("k1")
    assert metro is not None and metro.role is Role.VIEWER
    assert metro.may_act_for("METRO") and not metro.may_act_for("DUBAI_POLICE")
    admin = ring.authenticate("k2")
    assert admin is not None and admin.is_admin and admin.may_act_for("ANY")
    assert ring.authenticate("k3") is None
    path.write_text("- name: bad\n  role: root\n  key: x\n")
    with pytest.raises(InvalidInput):
        KeyRing().load_file(path)


def test_json_logs_mask_url_credentials() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "pulling %s", ("x",), None)
    record.url = "rtsp://admin:hunter2@cam/1"
    line = json.loads(JsonFormatter().format(record))
    assert line["url"] == "rtsp://***@cam/1" and "hunter2" not in json.dumps(line)


def test_cameras_file_loads_from_json_and_yaml(tmp_path: Path) -> None:
    entry = {"camera_id": "cam-1", "name": "One", "rtsp_url": "rtsp://u:p@10.0.0.1/s"}
    as_json = tmp_path / "cameras.json"
    as_json.write_text(json.dumps([entry]))
    as_yaml = tmp_path / "cameras.yaml"
    as_yaml.write_text(
        "cameras:\n  - {camera_id: cam-1, name: One, rtsp_url: 'rtsp://u:p@10.0.0.1/s'}\n"
    )
    for path in (as_json, as_yaml):
        (camera,) = load_cameras_file(path)
        assert (camera.camera_id, camera.enabled) == ("cam-1", True)
        assert "u:p" not in repr(camera)  # the URL is kept out of repr
    as_json.write_text(json.dumps([{"camera_id": "bad id", "rtsp_url": "rtsp://x/y"}]))
    with pytest.raises(InvalidInput):
        load_cameras_file(as_json)


def test_reservation_ids_never_read_as_a_command_line_option() -> None:
    made = [ids.new_reservation_id() for _ in range(5000)]
    assert all(rid[0].isalnum() and len(rid) == 22 for rid in made)
    assert len(set(made)) == len(made)
