"""Small helpers shared by the benchmark scripts: figures, the command line, a Valkey."""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from orchestrator.store.embedded import EmbeddedValkey


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(name: str, samples_s: list[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    return (
        f"{name:<22} n={len(ms):<6} p50={percentile(ms, 50):7.3f} ms  "
        f"p99={percentile(ms, 99):7.3f} ms  mean={statistics.fmean(ms) if ms else 0:7.3f} ms"
    )


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring's first line describes it, and what follows
    the usage line (from the docstring's fifth line on) is the epilog."""
    lines = (doc or "").splitlines()
    return argparse.ArgumentParser(
        description=lines[0] if lines else None,
        epilog="\n".join(lines[4:]) or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


Main = Callable[[str, Path], Coroutine[Any, Any, None]]


def run_on_valkey(main: Main, runner: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    """``main(valkey_url, tmp)`` with a fresh embedded Valkey in a temporary folder, run by
    ``runner`` (``asyncio.run`` or ``uvloop.run``)."""
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp) / "valkey") as server:
        runner(main(server.url, Path(tmp)))
