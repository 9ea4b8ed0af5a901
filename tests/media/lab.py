"""A loopback-only network for media tests: a ``--network none`` container plus 127.0.0.2.

aiortc's ICE leaves out exactly 127.0.0.1 when it gathers candidates, and on the host it would
also gather the machine's external address and send connectivity checks there. So the media
tests run in a network namespace that holds only ``lo``: a "lab" container started with
``network_mode=none``, whose ``lo`` gets a second address, 127.0.0.2. Pusher containers join
it with ``network_mode=container:<lab>``; host-side test processes (camera simulator, WHIP
receiver) enter it with ``nsenter --net``. Nothing in it can reach any other address.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import docker.errors

from tests.harness.constants import REPO_ROOT
from tests.harness.images import TEST_LABELS

LAB_ADDRESS = "127.0.0.2"


class Lab:
    def __init__(self, client: Any, image: str) -> None:
        self._client = client
        self._image = image
        self.container: Any = None
        self.pid = 0

    @property
    def network_mode(self) -> str:
        return f"container:{self.container.id}"

    def start(self) -> Lab:
        self.container = self._client.containers.run(
            self._image, detach=True, network_mode="none", labels=TEST_LABELS
        )
        self.container.reload()
        self.pid = int(self.container.attrs["State"]["Pid"])
        self.run(["ip", "addr", "add", f"{LAB_ADDRESS}/8", "dev", "lo"])
        return self

    def stop(self) -> None:
        if self.container is not None:
            with contextlib.suppress(docker.errors.NotFound):
                self.container.remove(force=True)

    def nsenter(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", *argv]

    def run(self, argv: Sequence[str]) -> str:
        done = subprocess.run(self.nsenter(argv), capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in the lab failed: {done.stderr.strip()}")
        return done.stdout

    def python(self, log: Path, module: str, *args: str) -> LabProcess:
        """``python -m module args`` from the repo root inside the lab's network; waits for its
        ``{"event": "ready"}`` line on stdout. Its stderr goes to ``log``."""
        with log.open("ab") as err:
            proc = subprocess.Popen(
                self.nsenter([sys.executable, "-m", module, *args]),
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        return LabProcess(proc, log)


class LabProcess:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.ready = self._ready(timeout=60)

    def _ready(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if readable:
                line = self.proc.stdout.readline()
                if line.startswith("{"):
                    event: dict[str, Any] = json.loads(line)
                    if event.get("event") == "ready":
                        return event
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.proc.args!r} did not get ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


@contextlib.contextmanager
def lab(client: Any, image: str) -> Iterator[Lab]:
    started = Lab(client, image)
    try:
        yield started.start()
    finally:
        started.stop()
