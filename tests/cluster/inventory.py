"""The cluster's nodes as the manager reports them, and changes to their specs.

The manager is the only source of truth for node state (``ready``/``down``): it learns a
node is gone when its heartbeats stop (1 s period in the test cluster), and emits no event
for a task. Polling these listings is how the tests and the Swarm adapter see the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker.errors

from tests.cluster.system import ClusterError, until


@dataclass(frozen=True)
class NodeInfo:
    """One node as the manager reports it."""

    name: str  # the node's hostname, also usable as node.hostname==<name>
    id: str
    role: str  # manager | worker
    availability: str  # active | pause | drain
    state: str  # ready | down | unknown | disconnected
    labels: dict[str, str]
    address: str


def list_nodes(manager: Any) -> list[NodeInfo]:
    """Every node the manager knows, by name (one ``GET /nodes``)."""
    found = []
    for attrs in manager.api.nodes():
        spec, status = attrs["Spec"], attrs["Status"]
        found.append(
            NodeInfo(
                name=attrs["Description"]["Hostname"],
                id=attrs["ID"],
                role=spec["Role"],
                availability=spec["Availability"],
                state=status["State"],
                labels=dict(spec.get("Labels") or {}),
                address=status.get("Addr", ""),
            )
        )
    return sorted(found, key=lambda node: node.name)


def find_node(manager: Any, name: str) -> NodeInfo:
    for node in list_nodes(manager):
        if node.name == name:
            return node
    raise ClusterError(f"the manager knows no node {name!r}")


def update_node(manager: Any, name: str, **changes: Any) -> None:
    """Change a node's spec (``Availability``, ``Labels``, ``Role``).

    Retried for up to 10 s: the manager bumps a node's version itself (on a status change),
    and an update against the old version is refused as "out of sequence".
    """

    def attempt() -> bool:
        node = manager.nodes.get(find_node(manager, name).id)
        try:
            node.update({**node.attrs["Spec"], **changes})
        except docker.errors.APIError as exc:
            if "out of sequence" in str(exc):
                return False
            raise ClusterError(f"updating node {name} with {changes}: {exc}") from exc
        return True

    until(f"node {name} updated with {changes}", 10, attempt)
