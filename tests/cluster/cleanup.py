"""Removing a test cluster, whole or half-built, ours or left by a crashed run.

Order matters: processes first (the recorded dockerd pids, then everything still inside the
slot's mount namespaces, container cgroups or network namespaces, by pid), then the
namespace handles (a mount namespace dies with its last process and handle, and takes the
nodes' overlay mounts with it), the network namespaces (their veths and bridge go with
them), the host link, the cgroups and last the files. Each step works on whatever is there,
so the same code removes a partly built cluster and a crashed run's leftovers.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.cluster.layout import (
    DOCKERD_NAME,
    Layout,
    free_slot,
    locked,
    owner_alive,
    present_slots,
    take,
)
from tests.cluster.system import (
    cgroup_members,
    cmdline,
    gone,
    host_links,
    mount_ns_members,
    mount_points,
    netns_members,
    netns_names,
    remove_cgroups,
    run,
    signal_all,
    umount,
    wait_gone,
)

MAX_NODES = 9


def recorded_dockerds(layout: Layout) -> list[int]:
    """The slot's dockerds still running: each recorded pid whose command line is still that
    node's dockerd (not a reused pid), and any process of the cluster's dockerd symlink that
    serves this slot (in case the pids file was lost)."""
    try:
        lines = layout.pids_file.read_text().splitlines()
    except OSError:
        return []
    live = []
    for line in lines:
        try:
            index, pid = (int(field) for field in line.split())
        except ValueError:  # a line cut short by a crash
            continue
        if not gone(pid) and f"unix://{layout.socket(index)}" in cmdline(pid):
            live.append(pid)
    # and any dockerd under the cluster's own name serving this slot (a lost pids file)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in live:
            argv = cmdline(int(entry.name)).split(" ")
            ours = any(arg.startswith(f"unix://{layout.run_dir}/") for arg in argv)
            if argv[0].endswith(f"/{DOCKERD_NAME}") and ours:
                live.append(int(entry.name))
    return live


def _members(layout: Layout) -> set[int]:
    """Every live process inside the slot's namespaces or container cgroups."""
    pids: set[int] = set()
    for index in range(1, MAX_NODES + 1):
        pids |= mount_ns_members(layout.mnt_handle(index))
        pids |= cgroup_members(layout.cgroup(index))
    for name in netns_names():
        if layout.owns(name):
            pids |= netns_members(name)
    pids.discard(os.getpid())
    return {pid for pid in pids if not gone(pid)}


def _mounts_of(layout: Layout) -> list[str]:
    """Mount points in the host under the slot's directories, deepest first."""
    tops = (str(layout.run_dir), str(layout.data_dir))
    found = [m for m in mount_points() if any(m == t or m.startswith(f"{t}/") for t in tops)]
    return sorted(found, reverse=True)


def destroy(layout: Layout, stop_wait: float = 0.0) -> list[str]:
    """Remove everything of ``layout``; returns what could not be removed (empty: all gone).

    ``stop_wait`` > 0 gives each dockerd that long after SIGTERM before SIGKILL. The default
    kills at once: the cluster's state is thrown away, so a graceful stop buys nothing.
    """
    problems: list[str] = []
    dockerds = recorded_dockerds(layout)
    if stop_wait > 0:
        signal_all(dockerds, signal.SIGTERM)
        dockerds = wait_gone(dockerds, stop_wait)
    signal_all(dockerds, signal.SIGKILL)
    victims = _members(layout) | set(dockerds)
    signal_all(victims, signal.SIGKILL)
    if left := wait_gone(victims, 10):
        problems.append(f"still alive after SIGKILL: {[(p, cmdline(p)[:60]) for p in left]}")
    for mount in _mounts_of(layout):  # namespace handles, the handles' dir, strays
        umount(Path(mount))
    for name in sorted(netns_names()):
        if layout.owns(name):
            result = run("ip", "netns", "delete", name, check=False)
            if result.returncode != 0:
                problems.append(f"netns {name}: {result.stderr.strip()}")
    if layout.host_link in host_links():
        run("ip", "link", "delete", layout.host_link, check=False)
    for index in range(1, MAX_NODES + 1):
        problems += remove_cgroups(layout.cgroup(index))
    if still_mounted := _mounts_of(layout):  # never delete files through a live mount
        problems.append(f"still mounted, files kept: {still_mounted}")
    else:
        for path in (layout.data_dir, layout.run_dir):
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                problems.append(f"could not remove {path}")
    return problems


def claim_slot() -> tuple[Layout, list[str]]:
    """Sweep every stale slot, then take the lowest free one for this process.

    Returns the slot and notes on what the sweep found (a crashed run's leftovers). A stale
    slot that cannot be removed stays unused; it does not block other slots.
    """
    notes: list[str] = []
    with locked():
        for slot in sorted(present_slots()):
            stale = Layout(slot)
            if owner_alive(stale):
                continue
            notes.append(f"removed leftovers of test cluster slot {slot}")
            notes += [f"slot {slot}: {problem}" for problem in destroy(stale)]
        layout = free_slot()
        take(layout)
    return layout, notes
