"""A real multi-node Docker Swarm for the tests, built on this machine from nothing.

Three dockerd nodes (one drained manager, two labelled workers), each in its own network,
mount and UTS namespace, joined by a bridge that lives in a namespace of its own. Nothing
leaves the cluster's private subnet, the host's own engine is only read (``docker save``),
and every process the cluster starts is recorded so a crashed run's leftovers are removed by
the next one. :class:`tests.cluster.swarm.SwarmCluster` is the API; the session fixture
``swarm_cluster`` is in :mod:`tests.cluster.fixtures`.
"""

from tests.cluster.inventory import NodeInfo
from tests.cluster.swarm import SwarmCluster
from tests.cluster.system import ClusterError

__all__ = ["ClusterError", "NodeInfo", "SwarmCluster"]
