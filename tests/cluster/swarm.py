"""The test Swarm: dockerd nodes on this machine, one drained manager and labelled workers.

    cluster = SwarmCluster()
    cluster.start(images=[tag])     # from nothing: namespaces, dockerds, swarm, images
    docker.DockerClient(base_url=cluster.manager_url)    # or DOCKER_HOST=<manager_url>
    cluster.stop_node("worker-2"); cluster.wait_node_state("worker-2", "down")
    cluster.stop()                  # all of it removed, by recorded pid

The SDK reaches each node on a unix socket under /run/cctv-swarm-test/<slot>/: dockerd runs
in its own mount namespace, but the socket is on the filesystem the host shares, so no
traffic crosses a network. Services need ``EndpointSpec(mode="dnsrr")``: the kernel has no
IPVS, so service VIPs and the ingress routing mesh do not work, while the attachable overlay
network ``cctv-pushers`` (VXLAN between the node namespaces) and ``tasks.<service>`` do.
The dispatcher heartbeat is 1 s, so the manager reports a dead node down within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker

from tests.cluster.cleanup import MAX_NODES, claim_slot, destroy
from tests.cluster.images import load_into, save_images
from tests.cluster.inventory import NodeInfo, find_node, list_nodes, update_node
from tests.cluster.layout import ADDRESS_POOL, SWARM_PORT, Layout, locked
from tests.cluster.nodes import Node, bind_ns_dir, create_network
from tests.cluster.system import ClusterError, require_tools, until

MANAGER = "manager"
PUSHER_NETWORK = "cctv-pushers"
WORKER_LABEL = ("cctv.pushers", "true")  # placement: node.labels.cctv.pushers==true
TEST_LABELS = {"cctv.orchestrator.test": "1"}


class SwarmCluster:
    """A real Swarm of ``workers`` + 1 dockerd nodes, built from nothing, removed by pid."""

    def __init__(
        self,
        workers: int = 2,
        *,
        heartbeat_seconds: float = 1.0,
        host_link: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        if not 1 <= workers < MAX_NODES:
            raise ValueError(f"workers must be 1..{MAX_NODES - 1}")
        self.heartbeat_seconds = heartbeat_seconds
        self.host_link = host_link
        self.start_timeout = start_timeout
        self.node_names = [MANAGER, *(f"worker-{i}" for i in range(1, workers + 1))]
        self.worker_names = self.node_names[1:]
        self.network = PUSHER_NETWORK
        self.worker_label = WORKER_LABEL
        self.layout: Layout | None = None
        self.build_seconds: float | None = None
        self.teardown_seconds: float | None = None
        self.notes: list[str] = []  # what the sweep of a crashed run's leftovers found
        self.images: list[str] = []  # tags loaded into every node
        self._nodes: dict[str, Node] = {}
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # --- addresses and clients ------------------------------------------------------------

    def _node(self, name: str) -> Node:
        if name not in self._nodes:
            raise ClusterError(f"no node {name!r} (nodes: {self.node_names}); started?")
        return self._nodes[name]

    @property
    def manager_url(self) -> str:
        """The manager's API, for ``docker.DockerClient(base_url=…)`` or ``DOCKER_HOST``."""
        return self.url(MANAGER)

    def url(self, name: str) -> str:
        return self._node(name).url

    def address(self, name: str) -> str:
        """The node's address on the cluster bridge (its swarm advertise address)."""
        return self._node(name).address

    @property
    def host_address(self) -> str:
        """Where containers reach a server that listens in the host (on this address)."""
        if self.layout is None or not self.host_link:
            raise ClusterError("no host link: start the cluster with host_link=True")
        return self.layout.host_address

    def client(self, name: str = MANAGER) -> Any:
        """A docker SDK client of one node (the manager by default), kept until stop."""
        with self._lock:
            if name not in self._clients:
                self._clients[name] = docker.DockerClient(base_url=self.url(name), timeout=60)
            return self._clients[name]

    def _drop_client(self, name: str) -> None:
        with self._lock:
            client = self._clients.pop(name, None)
        if client is not None:
            client.close()

    # --- build and teardown ---------------------------------------------------------------

    def start(self, images: Sequence[str] = ()) -> float:
        """Build the cluster and load ``images`` from the host engine; returns the seconds."""
        if self.layout is not None:
            raise ClusterError("the cluster is already started")
        started = time.monotonic()
        require_tools()
        self.layout, notes = claim_slot()
        self.notes += notes
        try:
            self._build(self.layout, list(images))
        except BaseException:
            try:
                self.stop()
            except ClusterError as exc:  # the build's own error is the one to report
                self.notes.append(str(exc))
            raise
        self.images += images
        self.build_seconds = time.monotonic() - started
        return self.build_seconds

    def _build(self, layout: Layout, images: list[str]) -> None:
        nodes = [Node(layout, i, name) for i, name in enumerate(self.node_names, 1)]
        self._nodes = {node.name: node for node in nodes}
        with ThreadPoolExecutor(max_workers=2 * len(nodes) + 1) as pool:
            saving = pool.submit(save_images, images, layout.data_dir / "images")
            bind_ns_dir(layout)
            create_network(layout, len(nodes), self.host_link)
            list(pool.map(Node.create_namespaces, nodes))
            for node in nodes:
                node.start()
            list(pool.map(lambda node: node.wait_ready(self.start_timeout), nodes))
            saved = saving.result()
            loads = [pool.submit(load_into, self.client(n.name), n.name, saved) for n in nodes]
            self._form_swarm(pool)
            for load in loads:
                load.result()

    def _form_swarm(self, pool: ThreadPoolExecutor) -> None:
        manager, address = self.client(), self.address(MANAGER)
        manager.swarm.init(
            advertise_addr=address,
            listen_addr=f"{address}:{SWARM_PORT}",
            default_addr_pool=[ADDRESS_POOL],
            subnet_size=24,
            dispatcher_heartbeat_period=int(self.heartbeat_seconds * 1e9),
        )
        token = manager.swarm.attrs["JoinTokens"]["Worker"]

        def join(name: str) -> None:
            self.client(name).swarm.join(
                remote_addrs=[f"{address}:{SWARM_PORT}"],
                join_token=token,
                listen_addr=f"{self.address(name)}:{SWARM_PORT}",
                advertise_addr=self.address(name),
            )

        list(pool.map(join, self.worker_names))
        self.wait_ready_nodes()
        self.set_availability(MANAGER, "drain")
        for name in self.worker_names:
            update_node(self.client(), name, Labels=dict([self.worker_label]))
        manager.networks.create(self.network, driver="overlay", attachable=True, labels=TEST_LABELS)

    def stop(self) -> float:
        """Remove the whole cluster (idempotent); ClusterError lists anything left behind."""
        if self.layout is None:
            return 0.0
        started = time.monotonic()
        for name in list(self._clients):
            self._drop_client(name)
        for node in self._nodes.values():
            node.kill()
        with locked():
            problems = destroy(self.layout)
        self.layout, self._nodes = None, {}
        self.teardown_seconds = time.monotonic() - started
        if problems:
            raise ClusterError("the test cluster's teardown left: " + "; ".join(problems))
        return self.teardown_seconds

    def load_image(self, tag: str) -> None:
        """``docker save`` ``tag`` on the host engine, ``docker load`` it into every node."""
        if self.layout is None:
            raise ClusterError("the cluster is not started")
        saved = save_images([tag], self.layout.data_dir / "images")
        with ThreadPoolExecutor(max_workers=len(self.node_names)) as pool:
            list(pool.map(lambda name: load_into(self.client(name), name, saved), self.node_names))
        self.images.append(tag)

    # --- nodes --------------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        """Every node, as the manager reports it, by name."""
        return list_nodes(self.client())

    def node(self, name: str) -> NodeInfo:
        return find_node(self.client(), name)

    def wait_node_state(self, name: str, state: str, timeout: float = 30.0) -> float:
        """Seconds until the manager reports node ``name`` in ``state`` (polled every 50 ms)."""
        return until(
            f"the manager reports {name} {state}",
            timeout,
            lambda: self.node(name).state == state,
            lambda: f"nodes: {self.nodes()}",
            interval=0.05,
        )

    def wait_ready_nodes(self, timeout: float = 30.0) -> float:
        """Seconds until the manager reports every node of the cluster ready."""
        want = sorted(self.node_names)
        return until(
            f"nodes {want} all ready",
            timeout,
            lambda: sorted(n.name for n in self.nodes() if n.state == "ready") == want,
            lambda: f"nodes: {self.nodes()}",
        )

    def set_availability(self, name: str, availability: str) -> None:
        """``docker node update --availability`` (active, pause or drain)."""
        update_node(self.client(), name, Availability=availability)

    def drain(self, name: str) -> None:
        self.set_availability(name, "drain")

    def stop_node(self, name: str, grace: float = 20.0) -> float:
        """Stop the node's dockerd (SIGTERM, SIGKILL after ``grace``); returns the seconds."""
        self._drop_client(name)
        return self._node(name).stop(grace)

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's dockerd, as in a crash (its containers keep running)."""
        self._drop_client(name)
        self._node(name).kill()

    def start_node(self, name: str, timeout: float | None = None) -> float:
        """Start the node's dockerd again in the same namespaces; seconds until it answers."""
        node = self._node(name)
        node.start()
        return node.wait_ready(self.start_timeout if timeout is None else timeout)
