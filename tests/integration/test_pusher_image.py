"""The registry-free pusher image: built once, cached by content hash, and really runnable.

These tests use their own Docker client rather than the ``docker_api`` fixture, whose session
sweep removes every labelled test container on the engine; the one container made here is
removed by id. The first run builds the base (about a minute); later runs reuse it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pusher_image import PROGRAM_REPO, REQUIREMENTS, ensure_pusher_image
from pusher_image.__main__ import main

from tests.harness.constants import REPO_ROOT
from tests.harness.docker import engine
from tests.harness.images import TEST_LABELS

pytestmark = [pytest.mark.docker]

NOBODY = 65534
ENTRYPOINT = ["/opt/pusher/bin/python", "-m", "cctv_pusher"]
CACHED_CALL_LIMIT_SECONDS = 10.0

# Runs inside the image as its default user; prints one JSON object.
_PROBE = """\
import json, os, sys
import aiortc, av
try:
    av.codec.Codec("h264", "r")
    h264 = "ok"
except Exception as exc:
    h264 = repr(exc)
print(json.dumps({
    "uid": os.getuid(),
    "gid": os.getgid(),
    "python": "%d.%d" % sys.version_info[:2],
    "av": av.__version__,
    "aiortc": aiortc.__version__,
    "h264_decoder": h264,
}))
"""

# Runs as root (``/root`` is 0700): what package managers and the build left behind.
_LEFTOVERS = """\
import json, os
paths = ["/var/lib/apt/lists", "/var/cache/apt", "/root/.cache", "/tmp"]
found = {p: sorted(os.listdir(p)) if os.path.isdir(p) else [] for p in paths}
site = "/opt/pusher/lib/python3.11/site-packages"
found["installers"] = sorted(
    n for n in os.listdir(site) if n.split("-")[0] in ("pip", "setuptools", "pkg_resources")
) + [p for p in ("/opt/pusher/bin/pip", "/usr/share/python-wheels") if os.path.exists(p)]
print(json.dumps(found))
"""


def _pin(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, f"{REQUIREMENTS} pins no {name}"
    return match.group(1)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Fails (never skips) when the engine does not answer."""
    docker_client = engine(timeout=120)
    yield docker_client
    docker_client.close()


@pytest.fixture(scope="module")
def image(client: Any) -> str:
    started = time.monotonic()
    tag = ensure_pusher_image(client)
    print(f"ensure_pusher_image: {tag} in {time.monotonic() - started:.1f}s")
    return tag


def test_tag_is_cached_by_content(client: Any, image: str) -> None:
    assert image.startswith(f"{PROGRAM_REPO}:"), image
    image_id = client.images.get(image).id
    started = time.monotonic()
    again = ensure_pusher_image(client)
    elapsed = time.monotonic() - started
    assert again == image, "unchanged inputs must give the same tag"
    assert client.images.get(again).id == image_id, "the cached call rebuilt the image"
    assert elapsed < CACHED_CALL_LIMIT_SECONDS, f"the cached call took {elapsed:.1f}s"


def test_config_matches_the_dockerfile(client: Any, image: str) -> None:
    config = client.images.get(image).attrs["Config"]
    assert config["Entrypoint"] == ENTRYPOINT
    assert config["User"] == f"{NOBODY}:{NOBODY}"
    assert config["StopSignal"] == "SIGTERM"
    assert "PYTHONPATH=/opt/pusher/app" in config["Env"]


def _run_python(client: Any, image: str, code: str, user: str | None = None) -> Any:
    """Run ``code`` with the image's venv python (no network) and parse its last line as JSON."""
    container = client.containers.run(
        image,
        entrypoint=["/opt/pusher/bin/python", "-c", code],
        user=user,
        network_mode="none",
        labels=TEST_LABELS,
        detach=True,
    )
    try:
        status = container.wait(timeout=120)
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, f"the probe failed in {image}:\n{logs}"
    return json.loads(logs.strip().splitlines()[-1])


def test_runs_as_nobody_with_the_pinned_media_stack(client: Any, image: str) -> None:
    facts = _run_python(client, image, _PROBE)
    assert facts["uid"] == NOBODY and facts["gid"] == NOBODY, facts
    assert facts["python"] == "3.11", facts
    assert facts["av"] == _pin("av"), facts
    assert facts["aiortc"] == _pin("aiortc"), facts
    assert facts["h264_decoder"] == "ok", f"PyAV has no H.264 decoder: {facts['h264_decoder']}"


def test_no_package_caches_in_the_image(client: Any, image: str) -> None:
    leftovers = _run_python(client, image, _LEFTOVERS, user="0:0")
    assert all(not names for names in leftovers.values()), f"left in the image: {leftovers}"


def test_make_pusher_image_runs_the_builder_module() -> None:
    """The Makefile's ``pusher-image`` command line reaches :func:`main` (``--help`` only)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "deploy" / "pusher")}
    done = subprocess.run(
        [sys.executable, "-m", "pusher_image", "--help"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: python -m pusher_image" in done.stdout
    with pytest.raises(SystemExit) as exited:  # and the same entry point in-process
        main(["--help"])
    assert exited.value.code == 0
