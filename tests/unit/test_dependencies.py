"""Every third-party package the service imports is declared in ``pyproject.toml``.

A dependency that arrives only through another one (aiohttp through livekit-api, requests
through docker) can vanish when that one changes its own dependencies; so every import of
``orchestrator/`` must name its distribution in ``[project] dependencies`` itself.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from tests.harness.constants import REPO_ROOT


def declared() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0] for d in project["dependencies"]}
    return {n.lower().replace("_", "-") for n in names}


def imported_top_levels(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"orchestrator", "__future__"}


def test_every_import_of_the_service_is_a_declared_dependency() -> None:
    distributions = importlib.metadata.packages_distributions()
    wanted = declared()
    missing = {}
    for module in sorted(imported_top_levels(REPO_ROOT / "orchestrator")):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        assert dists, f"{module} is imported but no installed distribution provides it"
        if not dists & wanted:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
