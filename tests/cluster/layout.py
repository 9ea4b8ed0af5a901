"""Names, addresses and paths of one test cluster, and who owns it.

A *slot* (1..32) is one cluster. Everything it makes outside its own namespaces is named
``cctvsw<slot>-…`` (network namespaces, the host end of its veth, cgroups) or lives under
``/run/cctv-swarm-test/<slot>`` and ``/var/tmp/cctv-swarm-test/<slot>``, so leftovers are
recognisable. Its subnet is ``10.217.<slot>.0/24``: two runs on one machine (a developer
beside CI) never collide. The owner file holds the owning process's pid and start time; a
slot whose owner is gone is stale, and the next claim removes it.

Nothing here is shared with the host's own dockerd (``/var/run/docker.sock``, data root
``/var/lib/docker``, exec root ``/run/docker``, cgroup parent ``/docker``, bridge ``docker0``).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.system import (
    CGROUP_ROOT,
    ClusterError,
    gone,
    host_links,
    netns_names,
    start_time,
)

PREFIX = "cctvsw"
# The nodes' dockerd runs under this name (a symlink): `pidof dockerd`, as a test looking
# for the host's engine might use, never finds a node of a test cluster.
DOCKERD_NAME = f"{PREFIX}-dockerd"
RUN_BASE = Path("/run/cctv-swarm-test")  # sockets, exec roots, pid files, namespace handles
DATA_BASE = Path("/var/tmp/cctv-swarm-test")  # data roots (overlay2 wants a disk, not tmpfs)
ADDRESS_POOL = "10.218.0.0/16"  # overlay subnets; they exist only inside the nodes
MAX_SLOTS = 32
SWARM_PORT = 2377
_OWNED_NAME = re.compile(rf"^{PREFIX}(\d+)-")


@dataclass(frozen=True)
class Layout:
    """Where everything of the cluster in ``slot`` lives. Node 1 is the manager."""

    slot: int

    @property
    def run_dir(self) -> Path:
        return RUN_BASE / str(self.slot)

    @property
    def data_dir(self) -> Path:
        return DATA_BASE / str(self.slot)

    @property
    def ns_dir(self) -> Path:
        """Mount and UTS namespace handles (a private bind mount, as ``unshare`` requires)."""
        return self.run_dir / "ns"

    @property
    def pids_file(self) -> Path:
        """``<node index> <pid>`` for every dockerd started, read by the cleanup."""
        return self.run_dir / "pids"

    @property
    def owner_file(self) -> Path:
        return self.run_dir / "owner"

    @property
    def bridge_netns(self) -> str:
        """The namespace holding the bridge: not the host, whose FORWARD policy is DROP."""
        return f"{PREFIX}{self.slot}-br"

    @property
    def host_link(self) -> str:
        """The host end of the veth that lets host processes reach the nodes, and back."""
        return f"{PREFIX}{self.slot}-h"

    @property
    def host_address(self) -> str:
        return f"10.217.{self.slot}.1"

    def netns(self, index: int) -> str:
        return f"{PREFIX}{self.slot}-n{index}"

    def cgroup(self, index: int) -> str:
        """dockerd's ``--cgroup-parent``: the node's containers, findable by the cleanup."""
        return f"{PREFIX}{self.slot}-n{index}"

    @property
    def dockerd(self) -> Path:
        """The symlink to dockerd that the nodes run (see DOCKERD_NAME)."""
        return self.run_dir / DOCKERD_NAME

    def address(self, index: int) -> str:
        return f"10.217.{self.slot}.{10 + index}"

    def socket(self, index: int) -> Path:
        return self.run_dir / f"n{index}.sock"

    def exec_root(self, index: int) -> Path:
        return self.run_dir / f"n{index}"

    def pidfile(self, index: int) -> Path:
        return self.run_dir / f"n{index}.pid"

    def mnt_handle(self, index: int) -> Path:
        return self.ns_dir / f"n{index}.mnt"

    def uts_handle(self, index: int) -> Path:
        return self.ns_dir / f"n{index}.uts"

    def cgroup_mover(self, index: int) -> Path:
        """Where the cgroup tree is parked while the node's /sys is remounted."""
        return self.run_dir / f"n{index}.cg"

    def data_root(self, index: int) -> Path:
        return self.data_dir / f"n{index}"

    def etc_docker(self, index: int) -> Path:
        """Bound over /etc/docker in the node: its own key.json (engine ID), no daemon.json."""
        return self.data_dir / f"n{index}.etc"

    def log(self, index: int) -> Path:
        return self.data_dir / f"n{index}.log"

    def owns(self, name: str) -> bool:
        """Whether a netns, link or cgroup name belongs to this slot."""
        match = _OWNED_NAME.match(name)
        return match is not None and int(match.group(1)) == self.slot


def owner_alive(layout: Layout) -> bool:
    """The slot's owning process still runs (pid and start time both match)."""
    try:
        pid_text, started = layout.owner_file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    return not gone(pid) and start_time(pid) == started


def take(layout: Layout) -> None:
    """Write this process as the owner of ``layout`` (under :func:`locked`)."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.owner_file.write_text(f"{os.getpid()} {start_time(os.getpid())}\n")


def present_slots() -> set[int]:
    """Slots with anything left on this machine: files, namespaces, links or cgroups."""
    names = {p.name for base in (RUN_BASE, DATA_BASE) if base.is_dir() for p in base.iterdir()}
    slots = {int(name) for name in names if name.isdigit()}
    found = netns_names() | host_links() | {p.name for p in CGROUP_ROOT.glob(f"*/{PREFIX}*")}
    for name in found:
        match = _OWNED_NAME.match(name)
        if match is not None:
            slots.add(int(match.group(1)))
    return slots


@contextmanager
def locked() -> Iterator[None]:
    """One process at a time claims, sweeps or removes slots on this machine."""
    RUN_BASE.mkdir(parents=True, exist_ok=True)
    with (RUN_BASE / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_slot() -> Layout:
    """The lowest slot with nothing of it left on the machine (call under :func:`locked`)."""
    used = present_slots()
    for slot in range(1, MAX_SLOTS + 1):
        if slot not in used:
            return Layout(slot)
    raise ClusterError(f"all {MAX_SLOTS} test cluster slots are in use: {sorted(used)}")
