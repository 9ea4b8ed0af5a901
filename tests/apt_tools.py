"""Binaries from Debian packages for tests (promtool, prometheus, docker-compose, ...).

Installs the package when a binary is missing and we run as root; otherwise fails with a
message saying what to install, so a test using it fails and never skips. Two processes asking
at once (pytest-xdist workers, two suites) serialise on a file lock: the second one finds the
binaries the first installed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"]
)


def _find(names: tuple[str, ...]) -> list[Path] | None:
    found = [shutil.which(name, path=_SEARCH_PATH) for name in names]
    if any(path is None for path in found):
        return None
    return [Path(path) for path in found if path is not None]


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, check=False, timeout=900
    )


def _install(package: str) -> None:
    install = ("install", "-y", "-q", "--no-install-recommends", package)
    result = _apt(*install)
    if result.returncode != 0:
        update = _apt("update", "-q")
        if update.returncode != 0:
            raise AssertionError(f"`apt-get update` failed:\n{update.stdout}{update.stderr}")
        result = _apt(*install)
    if result.returncode != 0:
        raise AssertionError(f"`apt-get install {package}` failed:\n{result.stdout}{result.stderr}")


def apt_binaries(package: str, *names: str) -> list[Path]:
    """Paths of ``names``; installs Debian's ``package`` when root and one is missing.

    Raises AssertionError (a test failure, never a skip) when they are missing and cannot be
    installed here.
    """
    found = _find(names)
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AssertionError(
            f"{', '.join(names)} not installed: run "
            f"`apt-get install --no-install-recommends {package}` as root"
        )
    lock_path = Path(tempfile.gettempdir()) / f"cctv-orchestrator-apt-{package}.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing right now
        try:
            found = _find(names)
            if found is None:
                _install(package)
                found = _find(names)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if found is None:
        raise AssertionError(f"Debian's {package} is installed but {names} is not on PATH")
    return found
