"""The harness's fixtures for every test (``tests/harness/fixtures.py``)."""

from tests.harness.store import add_cameras

pytest_plugins = ["tests.harness.fixtures", "tests.cluster.fixtures"]

__all__ = ["add_cameras"]  # still importable from here (tests/integration/test_script_calls.py)
