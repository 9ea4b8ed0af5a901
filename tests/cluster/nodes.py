"""One cluster node: its namespaces and its dockerd, and the network joining the nodes.

Why a mount namespace of its own per node: ``ip netns exec`` remounts /sys and drops the
cgroup tree (dockerd then fails with "Devices cgroup isn't mounted"), and staying in the
host's mount namespace would give every node the host's hostname and /etc/docker/key.json
(one engine ID for all) and leak dockerd's mounts into the host. The namespace is kept
(bound onto a file), so a dockerd killed and started again comes back beside its surviving
container shims, as after a real node crash.

The network: a bridge in a namespace of its own (not the host, where the main engine's
FORWARD policy DROP and br_netfilter would drop node-to-node traffic), a veth per node, and
optionally one veth into the host so a fake in the host is reachable from the containers.
Nodes have no default route: nothing they do can leave the cluster's /24.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.cluster.layout import Layout
from tests.cluster.system import ClusterError, gone, run, until

# $1 hostname, $2 where the cgroup tree is parked, $3 mount points to drop, $4 own /etc/docker
_NODE_SETUP = r"""
mount --make-rprivate /
hostname "$1"
mount --rbind /sys/fs/cgroup "$2"
umount -l /sys
mount -t sysfs sysfs /sys
mount --move "$2" /sys/fs/cgroup
findmnt -rn -o TARGET | grep -E "^($3)(/|\$)" | sort -r | while read -r m; do
  umount -l "$m" || true
done
mkdir -p /run/docker /run/containerd /var/lib/docker /etc/docker
mount -t tmpfs -o mode=0711,size=16m cctvsw-run-docker /run/docker
mount -t tmpfs -o mode=0711,size=16m cctvsw-run-containerd /run/containerd
mount -t tmpfs -o mode=0711,size=1m cctvsw-var-lib-docker /var/lib/docker
mount --bind "$4" /etc/docker
"""

# The host engine's state and every namespace handle: a node must hold none of them (a copy
# of a namespace handle would keep that namespace alive after its owner removed it).
_HIDDEN = "|".join(
    [
        "/var/lib/docker",
        "/run/docker",
        "/var/run/docker",
        "/run/containerd",
        "/var/run/containerd",
        "/run/netns",
        "/var/run/netns",
        "/run/cctv-swarm-test",
    ]
)


def create_network(layout: Layout, count: int, host_link: bool) -> None:
    """The bridge namespace, a namespace and veth per node and, if asked, the host link."""
    bridge = layout.bridge_netns
    run("ip", "netns", "add", bridge)
    run("ip", "-n", bridge, "link", "set", "lo", "up")
    run("ip", "-n", bridge, "link", "add", "br0", "type", "bridge")
    run("ip", "-n", bridge, "link", "set", "br0", "up")
    for index in range(1, count + 1):
        netns = layout.netns(index)
        run("ip", "netns", "add", netns)
        # both ends are created inside our namespaces: nothing appears in the host's
        veth = (f"v{index}", "type", "veth", "peer", "name", "eth0", "netns", netns)
        run("ip", "-n", bridge, "link", "add", *veth)
        run("ip", "-n", bridge, "link", "set", f"v{index}", "master", "br0", "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")
        run("ip", "-n", netns, "addr", "add", f"{layout.address(index)}/24", "dev", "eth0")
        run("ip", "-n", netns, "link", "set", "eth0", "up")
    if host_link:
        link = layout.host_link
        run("ip", "link", "add", link, "type", "veth", "peer", "name", "vh", "netns", bridge)
        run("ip", "-n", bridge, "link", "set", "vh", "master", "br0", "up")
        run("ip", "addr", "add", f"{layout.host_address}/24", "dev", link)
        run("ip", "link", "set", link, "up")


def bind_ns_dir(layout: Layout) -> None:
    """A private bind mount for the namespace handles (``unshare --mount=FILE`` needs one)."""
    layout.ns_dir.mkdir(parents=True, exist_ok=True)
    run("mount", "--bind", str(layout.ns_dir), str(layout.ns_dir))
    run("mount", "--make-private", str(layout.ns_dir))


class Node:
    """One dockerd in its own network, mount and UTS namespaces; index 1 is the manager."""

    def __init__(self, layout: Layout, index: int, name: str) -> None:
        self.layout = layout
        self.index = index
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.layout.address(self.index)

    @property
    def url(self) -> str:
        return f"unix://{self.layout.socket(self.index)}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _enter(self) -> list[str]:
        layout, index = self.layout, self.index
        return [
            "nsenter",
            f"--net=/run/netns/{layout.netns(index)}",
            f"--mount={layout.mnt_handle(index)}",
            f"--uts={layout.uts_handle(index)}",
            "--",
        ]

    def create_namespaces(self) -> None:
        """The persistent mount and UTS namespaces, entered from the node's netns."""
        layout, index = self.layout, self.index
        for path in (layout.cgroup_mover(index), layout.etc_docker(index)):
            path.mkdir(parents=True, exist_ok=True)
        for handle in (layout.mnt_handle(index), layout.uts_handle(index)):
            handle.touch()
        run(
            *("nsenter", f"--net=/run/netns/{layout.netns(index)}", "unshare"),
            *(f"--mount={layout.mnt_handle(index)}", f"--uts={layout.uts_handle(index)}"),
            *("--propagation", "private", "sh", "-euc", _NODE_SETUP, "sh", self.name),
            *(str(layout.cgroup_mover(index)), _HIDDEN, str(layout.etc_docker(index))),
        )

    def start(self) -> None:
        """Start dockerd in the node's namespaces; its pid is recorded before anything else."""
        if self.running:
            raise ClusterError(f"dockerd of {self.name} is already running")
        self._reap()
        layout, index = self.layout, self.index
        pidfile = layout.pidfile(index)
        with contextlib.suppress(ValueError, OSError):
            if gone(int(pidfile.read_text())):
                pidfile.unlink()  # dockerd refuses to start while an old one is listed there
        layout.data_root(index).mkdir(parents=True, exist_ok=True)
        if not layout.dockerd.is_symlink():
            layout.dockerd.symlink_to(Path(shutil.which("dockerd") or "/usr/sbin/dockerd"))
        command = [
            *self._enter(),
            *(str(layout.dockerd), "--data-root", str(layout.data_root(index))),
            *("--exec-root", str(layout.exec_root(index)), "--pidfile", str(pidfile)),
            *("-H", self.url, "--storage-driver", "overlay2"),
            *("--exec-opt", "native.cgroupdriver=cgroupfs"),
            *("--cgroup-parent", f"/{layout.cgroup(index)}", "--log-level", "info"),
        ]
        # with the image present locally the swarm executor does not even try a registry
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        with layout.log(index).open("ab") as log:
            self.process = subprocess.Popen(  # nsenter execs dockerd: same pid
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        with layout.pids_file.open("a") as pids:
            pids.write(f"{index} {self.process.pid}\n")

    def ping(self) -> bool:
        """dockerd answers ``GET /_ping`` on its socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(self.layout.socket(self.index)))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")

    def wait_ready(self, timeout: float) -> float:
        """Seconds until dockerd answers; fails at once, with its log, if it exits."""

        def probe() -> bool:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ClusterError(f"dockerd of {self.name} exited ({code}):\n{self.log_tail()}")
            return self.ping()

        return until(
            f"dockerd of {self.name} answering on {self.url}", timeout, probe, self.log_tail, 0.05
        )

    def stop(self, grace: float) -> float:
        """SIGTERM dockerd (it stops its containers first), SIGKILL after ``grace`` s."""
        started = time.monotonic()
        self._signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            if self.process is not None:
                self.process.wait(grace)
        self.kill()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL dockerd, as in a crash: its containerd dies too, shims and containers live."""
        self._signal(signal.SIGKILL)
        self._reap()

    def _signal(self, sig: signal.Signals) -> None:
        if self.running and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)

    def _reap(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired as exc:
                raise ClusterError(f"dockerd of {self.name} did not exit after SIGKILL") from exc
            self.process = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.layout.log(self.index).read_text(errors="replace")
        except OSError:
            return f"(no log at {self.layout.log(self.index)})"
        return "\n".join(text.splitlines()[-lines:])
