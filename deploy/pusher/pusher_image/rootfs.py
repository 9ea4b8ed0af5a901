"""Step 1, the root filesystem: ``cctv-pusher-base:<hash12>``, the Dockerfile's ``base`` stage
made without a registry.

A Debian bookworm root filesystem made by ``mmdebstrap`` (``--variant=minbase`` plus
``apt-packages.txt``) with the venv ``/opt/pusher`` holding the pins of ``requirements.txt``,
then ``docker import``-ed. The tag hashes both lists, :data:`RECIPE_VERSION` and the
architecture. Takes about a minute.

The wheels are downloaded on the host and installed inside the chroot with ``--no-index``: the
host's pip already knows how to reach an index here (its pip.conf, proxies and CA bundle),
whereas a pip inside the fresh chroot knows none of that. On a network that intercepts TLS with
its own CA, as the one this was written on does, pip in the chroot fails certificate checks.
"""

# A build tool: every process it starts (apt-get, pip, mmdebstrap) gets an argv built here from
# fixed words and the repository's own package lists, never from outside input.
# ruff: noqa: S603, S607

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pusher_image.common import (
    APT_PACKAGES,
    IMAGE_LABEL,
    REQUIREMENTS,
    PusherImageError,
    image_exists,
    log,
    tail,
    timed,
)

# Bump whenever the recipe below changes in a way the input files do not show
# (mmdebstrap options, hooks, mirrors, import changes): it is part of the tag's hash.
RECIPE_VERSION = 3

BASE_REPO = "cctv-pusher-base"
VENV = "/opt/pusher"
SUITE = "bookworm"
PYTHON_VERSION = "3.11"  # bookworm's python3: the wheels are picked for it
GLIBC_MINOR = 36  # bookworm's glibc 2.36: the newest manylinux_2_x wheel tag it can load
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What installs packages and is never used at run time: the venv's pip and setuptools (about
# 26 MB with their bytecode) and Debian's wheels for ensurepip. The Dockerfile removes the same.
INSTALLER_PATHS = (
    f"{VENV}/bin/pip*",
    f"{VENV}/lib/python{PYTHON_VERSION}/site-packages/pip",
    f"{VENV}/lib/python{PYTHON_VERSION}/site-packages/pip-*.dist-info",
    f"{VENV}/lib/python{PYTHON_VERSION}/site-packages/setuptools",
    f"{VENV}/lib/python{PYTHON_VERSION}/site-packages/setuptools-*.dist-info",
    f"{VENV}/lib/python{PYTHON_VERSION}/site-packages/pkg_resources",
    f"{VENV}/lib/python{PYTHON_VERSION}/site-packages/_distutils_hack",
    f"{VENV}/lib/python{PYTHON_VERSION}/site-packages/distutils-precedence.pth",
    "/usr/share/python-wheels",
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


def rootfs_tag() -> str:
    """``cctv-pusher-base:<hash12>`` over the recipe version, architecture and both lists."""
    digest = hashlib.sha256(f"recipe={RECIPE_VERSION}\0arch={_architecture()[0]}\0".encode())
    for path in (APT_PACKAGES, REQUIREMENTS):
        digest.update(f"{path.name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{BASE_REPO}:{digest.hexdigest()[:12]}"


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
    with timed("apt-get install mmdebstrap"):
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
            f"{tail(result.stdout + result.stderr)}"
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
    staged = f"/tmp/{inputs.name}"  # noqa: S108 - a path inside the chroot being built
    pip_install = (
        f'chroot "$1" env -i PATH=/usr/bin:/bin HOME=/root {VENV}/bin/pip install --isolated '
        f"--no-index --find-links {staged}/wheels --only-binary=:all: --no-cache-dir "
        f"--disable-pip-version-check --requirement {staged}/requirements.txt"
    )
    cleanup = (
        f'rm -rf "$1{staged}" "$1/root/.cache" "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* '
        '"$1/etc/resolv.conf" "$1/etc/hostname" '  # the host's; Docker provides its own
        + " ".join(f'"$1"{path}' for path in INSTALLER_PATHS)
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
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
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
        raise PusherImageError(f"mmdebstrap {reason}; its last lines:\n{tail(output)}")


def _mounts_under(path: Path) -> list[str]:
    prefix = f"{path.resolve()}/"
    with Path("/proc/self/mountinfo").open() as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(prefix)]


def _remove_workdir(path: Path) -> None:
    """Delete the work dir, unless something is still mounted in it (never rm through a mount)."""
    mounted = _mounts_under(path)
    if mounted:
        log(f"not removing {path}: still mounted: {', '.join(mounted)}")
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
    if not image_exists(client, tag):
        raise PusherImageError(f"docker import did not produce {tag}: {tail(str(result))}")


def build_rootfs_image(client: Any, tag: str) -> None:
    """Build ``tag`` from scratch: wheels, mmdebstrap root filesystem, docker import."""
    executable = _mmdebstrap()
    workdir = Path(tempfile.mkdtemp(prefix="cctv-pusher-base-"))
    try:
        inputs = workdir / "pusher-inputs"
        (inputs / "wheels").mkdir(parents=True)
        shutil.copyfile(REQUIREMENTS, inputs / "requirements.txt")
        with timed("pip download (host)"):
            _download_wheels(inputs / "wheels")
        tarball = workdir / "rootfs.tar"
        command = mmdebstrap_command(executable, inputs, tarball)
        log("running: " + " ".join(_quote(part) for part in command))
        with timed(f"mmdebstrap {SUITE} (timeout {BUILD_TIMEOUT_SECONDS}s)"):
            _run_mmdebstrap(command, workdir)
        size = tarball.stat().st_size / 1e6
        with timed(f"docker import {tag} ({size:.0f} MB)"):
            _import(client, tarball, tag, {IMAGE_LABEL: "base"})
    finally:
        _remove_workdir(workdir)


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./-]+", part) else "'" + part.replace("'", "'\\''") + "'"
