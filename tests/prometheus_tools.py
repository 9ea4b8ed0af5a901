"""The real Prometheus binaries (``promtool`` and ``prometheus``) for the monitoring tests,
from Debian's ``prometheus`` package (installed on first use when root: ``tests/apt_tools``).

Usable from scripts as well: ``python -m tests.prometheus_tools`` prints both paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from tests.apt_tools import apt_binaries


class PrometheusTools(NamedTuple):
    promtool: Path
    prometheus: Path


def prometheus_tools() -> PrometheusTools:
    """Paths of ``promtool`` and ``prometheus``; a test failure when they cannot be had."""
    promtool, prometheus = apt_binaries("prometheus", "promtool", "prometheus")
    return PrometheusTools(promtool, prometheus)


if __name__ == "__main__":
    tools = prometheus_tools()
    print(tools.promtool)
    print(tools.prometheus)
