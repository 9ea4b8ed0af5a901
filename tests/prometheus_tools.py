"""The real Prometheus binaries (``promtool`` and ``prometheus``) for the monitoring tests.

Installs Debian's ``prometheus`` package when they are missing and we run as root (the same
pattern as the static busybox in ``tests/images.py``); otherwise fails with a message saying
what to install, so a test using them fails and never skips. Two processes asking at once
(pytest-xdist workers, two suites) serialise on a file lock: the second one finds the binaries
the first installed.

Usable from scripts as well: ``python -m tests.prometheus_tools`` prints both paths.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

PACKAGE = "prometheus"
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"]
)
_LOCK = Path(tempfile.gettempdir()) / "cctv-orchestrator-apt-prometheus.lock"


class PrometheusTools(NamedTuple):
    promtool: Path
    prometheus: Path


def _find() -> PrometheusTools | None:
    promtool = shutil.which("promtool", path=_SEARCH_PATH)
    prometheus = shutil.which("prometheus", path=_SEARCH_PATH)
    if promtool is None or prometheus is None:
        return None
    return PrometheusTools(Path(promtool), Path(prometheus))


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, check=False, timeout=900
    )


def _install() -> None:
    install = ("install", "-y", "-q", "--no-install-recommends", PACKAGE)
    result = _apt(*install)
    if result.returncode != 0:
        update = _apt("update", "-q")
        if update.returncode != 0:
            raise AssertionError(f"`apt-get update` failed:\n{update.stdout}{update.stderr}")
        result = _apt(*install)
    if result.returncode != 0:
        raise AssertionError(f"`apt-get install {PACKAGE}` failed:\n{result.stdout}{result.stderr}")


def prometheus_tools() -> PrometheusTools:
    """Paths of ``promtool`` and ``prometheus``; installs Debian's package when root and missing.

    Raises AssertionError (a test failure, never a skip) when they are missing and cannot be
    installed here.
    """
    found = _find()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AssertionError(
            "promtool and prometheus are not installed: run "
            f"`apt-get install --no-install-recommends {PACKAGE}` as root (Debian's package "
            "gives /usr/bin/promtool and /usr/bin/prometheus)"
        )
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing right now
        try:
            found = _find()
            if found is None:
                _install()
                found = _find()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if found is None:
        raise AssertionError(
            f"Debian's {PACKAGE} package is installed but promtool or prometheus is not on PATH"
        )
    return found


if __name__ == "__main__":
    tools = prometheus_tools()
    print(tools.promtool)
    print(tools.prometheus)
