"""The WHIP pusher image of ``deploy/pusher/``, built on this machine without any registry.

``deploy/pusher/Dockerfile`` starts ``FROM debian:bookworm-slim``, which needs a registry. This
module builds the same image from local means only, in two content-addressed steps so that an
edit rebuilds only what it touches:

1. **Base** ``cctv-pusher-base:<hash12>``: a Debian bookworm root filesystem made by
   ``mmdebstrap`` (``--variant=minbase`` plus ``apt-packages.txt``) with the venv
   ``/opt/pusher`` holding the pins of ``requirements.txt``, then ``docker import``-ed. The hash
   covers both files, :data:`RECIPE_VERSION` and the architecture. Takes about a minute.
2. **Program** ``cctv-pusher:<hash12>``: a classic ``docker build`` of ``FROM <base>`` followed
   by the Dockerfile's own program layer (the lines after its ``FROM base``), so the layer has
   one source of truth. The hash covers the base tag, that text and every file of
   ``deploy/pusher/cctv_pusher/``. Takes seconds.

The wheels are downloaded on the host and installed inside the chroot with ``--no-index``: the
host's pip already knows how to reach an index here (its pip.conf, proxies and CA bundle),
whereas a pip inside the fresh chroot knows none of that. On a network that intercepts TLS with
its own CA, as the one this was written on does, pip in the chroot fails certificate checks.

Existing tags are reused and old tags are left alone; :func:`remove_stale` (or ``python -m
tests.media.pusher_image --remove-stale``) drops the ones that are no longer current.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

# Bump whenever the base recipe below changes in a way the input files do not show
# (mmdebstrap options, hooks, mirrors, import changes): it is part of the base hash.
RECIPE_VERSION = 2

BASE_REPO = "cctv-pusher-base"
PROGRAM_REPO = "cctv-pusher"
IMAGE_LABEL = "cctv.pusher.image"  # "base" or "program"; the source of the image's hash

REPO_ROOT = Path(__file__).resolve().parents[2]
PUSHER_DIR = REPO_ROOT / "deploy" / "pusher"
DOCKERFILE = PUSHER_DIR / "Dockerfile"
APT_PACKAGES = PUSHER_DIR / "apt-packages.txt"
REQUIREMENTS = PUSHER_DIR / "requirements.txt"
PROGRAM_DIR = PUSHER_DIR / "cctv_pusher"

PROGRAM_MARKER = "# --- program layer"
VENV = "/opt/pusher"
SUITE = "bookworm"
PYTHON_VERSION = "3.11"  # bookworm's python3: the wheels are picked for it
GLIBC_MINOR = 36  # bookworm's glibc 2.36: the newest manylinux_2_x wheel tag it can load
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# Without this hook bookworm's init-system-helpers pulls in usrmerge and with it all of perl.
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
# Docs, man pages and translations are dead weight in a container (copyrights stay).
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)
# An imported image has an empty config; give it the PATH debian:bookworm-slim has.
IMPORT_CHANGES = ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)

BUILD_TIMEOUT_SECONDS = 20 * 60
DOWNLOAD_TIMEOUT_SECONDS = 10 * 60
LOCK_PATH = Path(tempfile.gettempdir()) / "cctv-pusher-image.lock"
_TAIL_LINES = 40


class PusherImageError(RuntimeError):
    """The pusher image could not be built; the message says which step and why."""


def _log(message: str) -> None:
    print(f"[pusher-image] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    _log(f"{step} ...")
    yield
    _log(f"{step}: done in {time.monotonic() - started:.1f}s")


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- inputs and tags -------------------------------------------------------------------------


def apt_packages(path: Path = APT_PACKAGES) -> list[str]:
    """The package names of ``apt-packages.txt``: comments and blank lines dropped."""
    names = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [name for name in names if name]


def _architecture() -> tuple[str, str]:
    """(Debian architecture, wheel platform suffix) of this machine: mmdebstrap builds native."""
    machine = platform.machine()
    known = {"x86_64": ("amd64", "x86_64"), "aarch64": ("arm64", "aarch64")}
    if machine not in known:
        raise PusherImageError(f"unsupported machine {machine!r} (known: {', '.join(known)})")
    return known[machine]


def base_tag() -> str:
    """``cctv-pusher-base:<hash12>`` over the recipe version, architecture and both lists."""
    digest = hashlib.sha256(f"recipe={RECIPE_VERSION}\0arch={_architecture()[0]}\0".encode())
    for path in (APT_PACKAGES, REQUIREMENTS):
        digest.update(f"{path.name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{BASE_REPO}:{digest.hexdigest()[:12]}"


def program_layer(dockerfile_text: str) -> str:
    """The Dockerfile lines after the ``FROM base`` that follows the program-layer marker."""
    lines = dockerfile_text.splitlines()
    marker = next((i for i, line in enumerate(lines) if line.startswith(PROGRAM_MARKER)), None)
    if marker is None:
        raise PusherImageError(f"{DOCKERFILE}: no line starting {PROGRAM_MARKER!r}")
    for index in range(marker + 1, len(lines)):
        if re.fullmatch(r"FROM\s+base", lines[index].strip(), re.IGNORECASE):
            return "\n".join(lines[index + 1 :]) + "\n"
    raise PusherImageError(f"{DOCKERFILE}: no `FROM base` line after {PROGRAM_MARKER!r}")


@dataclass(frozen=True)
class _Entry:
    """One build-context member; ``data`` is None for a directory."""

    path: str
    mode: int
    data: bytes | None


def _program_entries() -> list[_Entry]:
    """``cctv_pusher/`` as context entries, ``__pycache__`` skipped.

    Modes are normalised to 0755/0644 like git does: the hash then does not depend on the
    checkout's umask, and uid 65534 in the image can always read the files.
    """
    if not PROGRAM_DIR.is_dir():
        raise PusherImageError(f"{PROGRAM_DIR} is missing: the program layer copies it")
    entries = [_Entry(PROGRAM_DIR.name, 0o755, None)]
    for root, dirs, files in os.walk(PROGRAM_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        base = Path(root)
        for name in dirs:
            entries.append(_Entry((base / name).relative_to(PUSHER_DIR).as_posix(), 0o755, None))
        for name in sorted(files):
            path = base / name
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            rel = path.relative_to(PUSHER_DIR).as_posix()
            entries.append(_Entry(rel, mode, path.read_bytes()))
    return entries


def _program_dockerfile(base: str) -> str:
    return f"FROM {base}\n{program_layer(DOCKERFILE.read_text())}"


def program_tag(base: str, entries: Sequence[_Entry] | None = None) -> str:
    """``cctv-pusher:<hash12>`` over the base tag, the program layer and ``cctv_pusher/``."""
    digest = hashlib.sha256(_program_dockerfile(base).encode())
    for entry in entries if entries is not None else _program_entries():
        digest.update(f"\0{entry.path}\0{entry.mode:o}\0".encode())
        if entry.data is not None:
            digest.update(hashlib.sha256(entry.data).digest())
    return f"{PROGRAM_REPO}:{digest.hexdigest()[:12]}"


def _image_exists(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- base image: mmdebstrap + docker import --------------------------------------------------


def _mmdebstrap() -> str:
    """The mmdebstrap executable; apt-installs it when root, else says what to install."""
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PusherImageError(
            "mmdebstrap is needed to build the pusher base image: "
            "run `sudo apt-get install mmdebstrap uidmap` (Debian/Ubuntu) and retry"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "mmdebstrap"]
    with _timed("apt-get install mmdebstrap"):
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
    found = shutil.which("mmdebstrap")
    if not found:
        raise PusherImageError("mmdebstrap was installed but is not on PATH")
    return found


def _wheel_platforms(arch: str) -> list[str]:
    """Every manylinux tag bookworm's glibc accepts: pip does not expand ``manylinux_2_x``."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def _download_wheels(destination: Path) -> None:
    """Fetch the pinned wheels for bookworm's CPython with the host's pip (and its config)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        *(f"--platform={tag}" for tag in _wheel_platforms(_architecture()[1])),
        "--requirement",
        str(REQUIREMENTS),
        "--dest",
        str(destination),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PusherImageError(f"pip download timed out after {exc.timeout}s") from exc
    if result.returncode != 0:
        raise PusherImageError(
            f"pip download of {REQUIREMENTS} failed (exit {result.returncode}):\n"
            f"{_tail(result.stdout + result.stderr)}"
        )


def mmdebstrap_command(executable: str, inputs: Path, output: Path) -> list[str]:
    """The mmdebstrap invocation: minbase Debian, the apt packages, the venv, no caches.

    ``minbase`` (Essential plus apt) is what debian:bookworm-slim is, and apt-packages.txt is
    written against that: PyAV's wheel needs libstdc++6, which slim has only because apt
    depends on it, and which ``--variant=essential`` lacks.

    ``inputs`` (requirements.txt and wheels/) is copied to ``/tmp/<name>`` of the chroot.
    ``unshare`` mode keeps every mount in a private namespace, so a killed build leaves
    nothing mounted on the host. mmdebstrap's own apt cleanup leaves lock files and
    ``partial/`` directories behind; the last hook empties both directories instead.
    """
    staged = f"/tmp/{inputs.name}"
    pip_install = (
        f'chroot "$1" env -i PATH=/usr/bin:/bin HOME=/root {VENV}/bin/pip install --isolated '
        f"--no-index --find-links {staged}/wheels --only-binary=:all: --no-cache-dir "
        f"--disable-pip-version-check --requirement {staged}/requirements.txt"
    )
    cleanup = (
        f'rm -rf "$1{staged}" "$1/root/.cache" "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* '
        '"$1/etc/resolv.conf" "$1/etc/hostname"'  # the host's; Docker provides its own
    )
    hooks = [f"--hook-dir={MERGED_USR_HOOKS}"] if MERGED_USR_HOOKS.is_dir() else []
    return [
        executable,
        "--mode=unshare",
        "--variant=minbase",
        f"--architectures={_architecture()[0]}",
        f"--include={','.join(apt_packages())}",
        *hooks,
        *(f"--dpkgopt={option}" for option in DPKG_EXCLUDES),
        "--skip=cleanup/apt",
        f"--customize-hook=copy-in {inputs} /tmp",
        f'--customize-hook=chroot "$1" python3 -m venv {VENV}',
        f"--customize-hook={pip_install}",
        f"--customize-hook={cleanup}",
        SUITE,
        str(output),
        *MIRRORS,
    ]


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the build's process group, then SIGKILL what is left after 30 s."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_mmdebstrap(command: list[str], workdir: Path) -> None:
    """Run mmdebstrap with its temp rootfs in ``workdir``, bounded by the build timeout."""
    log_path = workdir / "mmdebstrap.log"
    env = {**os.environ, "TMPDIR": str(workdir)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        timed_out = False
        try:
            process.wait(timeout=BUILD_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(process)
        except BaseException:  # Ctrl-C: take the whole build down with us
            _stop_group(process)
            raise
    if timed_out or process.returncode != 0:
        output = log_path.read_text(errors="replace")
        reason = f"timed out after {BUILD_TIMEOUT_SECONDS}s" if timed_out else "failed"
        reason += f", exit {process.returncode}"
        raise PusherImageError(f"mmdebstrap {reason}; its last lines:\n{_tail(output)}")


def _mounts_under(path: Path) -> list[str]:
    prefix = f"{path.resolve()}/"
    with Path("/proc/self/mountinfo").open() as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(prefix)]


def _remove_workdir(path: Path) -> None:
    """Delete the work dir, unless something is still mounted in it (never rm through a mount)."""
    mounted = _mounts_under(path)
    if mounted:
        _log(f"not removing {path}: still mounted: {', '.join(mounted)}")
        return
    shutil.rmtree(path, ignore_errors=True)


def _import(client: Any, tarball: Path, tag: str, labels: dict[str, str]) -> None:
    repository, _, version = tag.partition(":")
    if not tarball.is_file():  # docker-py would take a missing path for a URL to fetch
        raise PusherImageError(f"mmdebstrap produced no {tarball}")
    changes = [*IMPORT_CHANGES, *(f'LABEL {key}="{value}"' for key, value in labels.items())]
    result = client.api.import_image(
        src=str(tarball), repository=repository, tag=version, changes=changes
    )
    for line in str(result).splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("error"):
                raise PusherImageError(f"docker import of {tag} failed: {message['error']}")
    if not _image_exists(client, tag):
        raise PusherImageError(f"docker import did not produce {tag}: {_tail(str(result))}")


def build_base(client: Any, tag: str) -> None:
    """Build ``tag`` from scratch: wheels, mmdebstrap rootfs, docker import."""
    executable = _mmdebstrap()
    workdir = Path(tempfile.mkdtemp(prefix="cctv-pusher-base-"))
    try:
        inputs = workdir / "pusher-inputs"
        (inputs / "wheels").mkdir(parents=True)
        shutil.copyfile(REQUIREMENTS, inputs / "requirements.txt")
        with _timed("pip download (host)"):
            _download_wheels(inputs / "wheels")
        tarball = workdir / "rootfs.tar"
        command = mmdebstrap_command(executable, inputs, tarball)
        _log("running: " + " ".join(_quote(part) for part in command))
        with _timed(f"mmdebstrap {SUITE} (timeout {BUILD_TIMEOUT_SECONDS}s)"):
            _run_mmdebstrap(command, workdir)
        size = tarball.stat().st_size / 1e6
        with _timed(f"docker import {tag} ({size:.0f} MB)"):
            _import(client, tarball, tag, {IMAGE_LABEL: "base"})
    finally:
        _remove_workdir(workdir)


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./-]+", part) else "'" + part.replace("'", "'\\''") + "'"


# --- program image: docker build on top of the base ------------------------------------------


def _context(dockerfile: str, entries: Sequence[_Entry]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode()
        members = [_Entry("Dockerfile", 0o644, data), *entries]
        for entry in members:
            info = tarfile.TarInfo(entry.path)
            info.mode, info.mtime = entry.mode, 0
            if entry.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    buffer.seek(0)
    return buffer


def build_program(client: Any, base: str, tag: str, entries: Sequence[_Entry]) -> None:
    """``docker build`` the program layer on ``base``; raises with the build's last lines."""
    dockerfile = _program_dockerfile(base)
    output: list[str] = []
    stream = client.api.build(
        fileobj=_context(dockerfile, entries),
        custom_context=True,
        tag=tag,
        pull=False,
        rm=True,
        forcerm=True,
        labels={IMAGE_LABEL: "program"},
        decode=True,
    )
    for chunk in stream:
        if "stream" in chunk:
            output.append(str(chunk["stream"]))
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise PusherImageError(
                f"docker build of {tag} failed: {detail}\n{_tail(''.join(output))}"
            )
    if not _image_exists(client, tag):
        raise PusherImageError(f"docker build did not produce {tag}:\n{_tail(''.join(output))}")


# --- entry points -----------------------------------------------------------------------------


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One builder per machine: a second process waits, then finds the tags already built."""
    with LOCK_PATH.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"another process is building (lock {LOCK_PATH}); waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_pusher_image(client: docker.DockerClient | None = None) -> str:
    """Return ``cctv-pusher:<hash12>``, building the base and/or program image if missing."""
    client = client or docker.from_env(timeout=120)
    base = base_tag()
    entries = _program_entries()
    tag = program_tag(base, entries)
    if _image_exists(client, tag):
        return tag
    with _build_lock():
        if not _image_exists(client, base):
            with _timed(f"base image {base}"):
                build_base(client, base)
        if not _image_exists(client, tag):
            with _timed(f"program image {tag}"):
                build_program(client, base, tag, entries)
    return tag


def remove_stale(client: docker.DockerClient) -> list[str]:
    """Untag every ``cctv-pusher:*`` / ``cctv-pusher-base:*`` but the current two.

    Nothing calls this automatically: old tags are a cache (switching branches back reuses
    them). Program tags go first so that their bases are no longer in use; a tag that a
    container still uses stays and is reported on stderr. Returns the removed tags.
    """
    base = base_tag()
    current = {base, program_tag(base)}
    removed: list[str] = []
    for repository in (PROGRAM_REPO, BASE_REPO):
        for image in client.images.list(name=repository):
            for tag in image.tags:
                if tag.partition(":")[0] != repository or tag in current:
                    continue
                try:
                    client.images.remove(tag)
                except docker.errors.APIError as exc:
                    _log(f"kept {tag}: {exc}")
                    continue
                removed.append(tag)
    return removed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.media.pusher_image",
        description=(
            "Build the WHIP pusher image without a container registry and print its tag. "
            f"The base ({BASE_REPO}:<hash>) is a Debian {SUITE} root filesystem made with "
            "mmdebstrap from deploy/pusher/apt-packages.txt plus a venv at /opt/pusher with "
            "the pins of deploy/pusher/requirements.txt (wheels fetched by this machine's pip), "
            f"imported with `docker import`. The program image ({PROGRAM_REPO}:<hash>) is "
            "`FROM <base>` plus the program-layer lines of deploy/pusher/Dockerfile (after its "
            "`FROM base`) with deploy/pusher/cctv_pusher/ as the context. Tags are content "
            "hashes of those inputs: an existing tag is reused, so a second run takes seconds."
        ),
    )
    parser.add_argument(
        "--remove-stale",
        action="store_true",
        help=f"afterwards untag older {PROGRAM_REPO}:* and {BASE_REPO}:* images",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    client = docker.from_env(timeout=120)
    try:
        tag = ensure_pusher_image(client)
        if args.remove_stale:
            for stale in remove_stale(client):
                _log(f"removed {stale}")
    except PusherImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
