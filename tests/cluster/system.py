"""Host primitives the test cluster is built from: commands, processes, mounts, cgroups, netns.

Every signal sent from here goes to a pid, and only to processes the cluster itself started:
its recorded dockerd pids, or processes found inside its own namespaces and cgroups. Waits are
bounded and end in a :class:`ClusterError` that says what did not happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.apt_tools import apt_binaries

CGROUP_ROOT = Path("/sys/fs/cgroup")


class ClusterError(AssertionError):
    """The cluster could not be built, changed or removed: a test failure, never a skip."""


def require_tools() -> None:
    """Root, and the Debian packages the cluster runs (installed on first use)."""
    if os.geteuid() != 0:
        raise ClusterError("the Swarm test cluster needs root (namespaces, mounts, dockerd)")
    apt_binaries("iproute2", "ip")
    apt_binaries("util-linux", "nsenter", "unshare", "findmnt")
    apt_binaries("mount", "mount", "umount")
    apt_binaries("iptables", "iptables")
    apt_binaries("docker.io", "dockerd", "containerd", "runc")


def run(*args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``check``, a non-zero exit raises ClusterError with its stderr."""
    try:
        result = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"`{' '.join(args)}` did not finish within {timeout:g} s") from exc
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ClusterError(f"`{' '.join(args)}` failed ({result.returncode}): {output}")
    return result


def until(
    what: str,
    timeout: float,
    probe: Callable[[], bool],
    explain: Callable[[], str] | None = None,
    interval: float = 0.1,
) -> float:
    """Seconds until ``probe()`` holds; ClusterError naming ``what`` after ``timeout``.

    Exceptions from ``probe`` mean "not yet" (a daemon still starting) and the last one is
    quoted in the failure, except ClusterError, which means "never" and ends the wait at once.
    """
    started = time.monotonic()
    last = ""
    while True:
        try:
            if probe():
                return time.monotonic() - started
        except ClusterError:
            raise
        except Exception as exc:
            last = f"; last error: {type(exc).__name__}: {exc}"
        if time.monotonic() - started >= timeout:
            break
        time.sleep(interval)
    extra = f"\n{explain()}" if explain is not None else ""
    raise ClusterError(f"not within {timeout:g} s: {what}{last}{extra}")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def gone(pid: int) -> bool:
    """The process has exited: no /proc entry, or a zombie not reaped yet (pid 1 reaps late)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22): tells it from a reused pid."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Waits up to ``timeout`` for every pid to exit; returns those still alive."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if not gone(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if not gone(pid)]
    return alive


def mount_points() -> set[str]:
    """Every mount point of our mount namespace (octal escapes of mountinfo decoded)."""
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.add(raw.encode().decode("unicode_escape"))
    return points


def umount(path: Path) -> None:
    if run("umount", str(path), check=False).returncode != 0:
        run("umount", "-l", str(path), check=False)


def mount_ns_members(handle: Path) -> set[int]:
    """Pids whose mount namespace is the one bound on ``handle`` (none if it is not bound)."""
    if str(handle) not in mount_points():
        return set()
    want = handle.stat()
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            seen = (entry / "ns" / "mnt").stat()
            if (seen.st_dev, seen.st_ino) == (want.st_dev, want.st_ino):
                members.add(int(entry.name))
    return members


def cgroup_dirs(name: str) -> list[Path]:
    """``name`` under every cgroup v1 hierarchy (and v2, if mounted) where it exists."""
    return [path for path in CGROUP_ROOT.glob(f"*/{name}") if path.is_dir()]


def cgroup_members(name: str) -> set[int]:
    members: set[int] = set()
    for top in cgroup_dirs(name):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                members.update(int(pid) for pid in procs.read_text().split())
    return members


def remove_cgroups(name: str) -> list[str]:
    """rmdir ``name`` and its sub-cgroups, deepest first; returns what could not be removed."""
    problems = []
    for top in cgroup_dirs(name):
        for path in [*sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True), top]:
            for attempt in range(20):  # an exiting task leaves its cgroup a moment later
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if attempt == 19:
                        problems.append(f"cgroup {path}: {exc}")
                    time.sleep(0.05)
    return problems


def netns_names() -> set[str]:
    listing = run("ip", "netns", "list", check=False).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def netns_members(name: str) -> set[int]:
    listing = run("ip", "netns", "pids", name, check=False).stdout
    return {int(pid) for pid in listing.split() if pid.isdigit()}


def host_links() -> set[str]:
    """Interface names in the host's network namespace (``veth@peer`` shown as ``veth``)."""
    listing = run("ip", "-o", "link", "show", check=False).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in listing.splitlines() if line}
