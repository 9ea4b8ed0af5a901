"""The session's Swarm test cluster as a pytest fixture (``swarm_cluster``).

Registered by ``tests/conftest.py`` (``pytest_plugins``) or by a test module that needs it.
The cluster is built once per session, with the harness's test images (the placeholder
pusher and the WHIP pusher stand-in, built on the host engine and cached by content) loaded
into every node, and removed at the end of the session. It needs nothing else from the
harness, so it builds even when the service does not import. If it cannot be built, every
test that uses it fails with the reason (never skips).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.swarm import SwarmCluster
from tests.harness.images import build_placeholder_pusher_image, build_whip_pusher_image


@pytest.fixture(scope="session")
def swarm_cluster() -> Iterator[SwarmCluster]:
    """A 3-node Swarm (drained manager, two workers labelled ``cctv.pushers=true``)."""
    try:
        images = [build_placeholder_pusher_image(), build_whip_pusher_image()]
    except Exception as exc:
        pytest.fail(f"the Swarm test cluster's images could not be built: {exc}", pytrace=False)
    cluster = SwarmCluster()
    try:
        cluster.start(images=images)
    except AssertionError as exc:
        pytest.fail(f"the Swarm test cluster could not be built: {exc}", pytrace=False)
    for note in cluster.notes:
        print(f"swarm cluster: {note}")
    print(f"swarm cluster: built in {cluster.build_seconds:.2f} s at {cluster.manager_url}")
    yield cluster
    cluster.stop()
    print(f"swarm cluster: removed in {cluster.teardown_seconds:.2f} s")
