"""The service as a subprocess: the real ``python -m orchestrator serve`` on 127.0.0.1.

Several may share one Valkey (replicas), or one runs its own embedded Valkey (``valkey_url``
None). Each logs to ``<tmp>/<name>.log``; a failing test gets the log tail of every service it
started as a report section (``tests/harness/fixtures.py``). The on-call CLI runs against a
service with :func:`cli_run` and friends, with the service's own environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx

from tests.harness.constants import API_KEYS, LIVEKIT_KEY, LIVEKIT_SECRET

START_TIMEOUT_SECONDS = 30.0
_INHERITED_NOT = ("CCTV_", "LIVEKIT_", "VALKEY_URL")  # settings of the developer's shell


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_api_keys(tmp: Path) -> Path:
    """``<tmp>/keys.json`` holding :data:`API_KEYS`: the keys of every test service."""
    path = tmp / "keys.json"
    path.write_text(json.dumps(API_KEYS))
    return path


class ServiceProcess:
    """``serve`` with the harness's keys and LiveKit credentials; LiveKit's server API and the
    pushers off (``CCTV_LIVEKIT_ENABLED``, ``CCTV_PUSHERS_ENABLED``: a test turns them on).

    ``env`` adds or overrides variables; a value of None removes one. ``harness_env=False``
    leaves out the keys file, the LiveKit settings and the pushers switch (only Valkey, port
    and data folder are set).
    ``async with`` starts it in a thread and opens :attr:`http`, a client of it.
    """

    # Started since the current test began, or still running (see fixtures.py): the services
    # whose log a failing test shows.
    started: ClassVar[list[ServiceProcess]] = []

    def __init__(
        self,
        name: str,
        tmp: Path,
        valkey_url: str | None,
        env: Mapping[str, str | None] | None = None,
        *,
        log_level: str = "info",
        ready_path: str = "/health",
        harness_env: bool = True,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        self.data_dir = tmp / f"{name}-data"
        self.ready_path = ready_path
        self.argv = [sys.executable, "-m", "orchestrator", "serve", "--log-level", log_level]
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_NOT)}
        settings: dict[str, str | None] = {
            "VALKEY_URL": valkey_url,
            "CCTV_PORT": str(self.port),
            "CCTV_DATA_DIR": str(self.data_dir),
        }
        if harness_env:
            settings |= {
                "CCTV_API_KEYS_FILE": str(write_api_keys(tmp)),
                "LIVEKIT_API_KEY": LIVEKIT_KEY,
                "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
                "CCTV_LIVEKIT_ENABLED": "false",  # no LiveKit server unless a test brings a fake
                "CCTV_PUSHERS_ENABLED": "false",  # no containers unless a test asks for them
                "CCTV_STATS_MAX_AGE_SECONDS": "0",  # tests read stats right after they act
            }
        merged = {**inherited, **settings, **(env or {})}
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.process: subprocess.Popen[bytes] | None = None
        self._http: httpx.AsyncClient | None = None

    # --- the process ---------------------------------------------------------------------

    def start(self) -> ServiceProcess:
        """Start (or start again, on the same port and data folder) and wait for
        :attr:`ready_path` to answer 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        ServiceProcess.started.append(self)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"{self.name} did not answer {self.ready_path} within {START_TIMEOUT_SECONDS} s:\n"
            f"{self.log_tail()}"
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 20 s; the exit code (None if it never started)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        return None if self.process is None else self.process.returncode

    def rss_bytes(self) -> int:
        """The service's resident memory now (``VmRSS`` in ``/proc/<pid>/status``)."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- a client of it --------------------------------------------------------------------

    def client(self, **options: Any) -> httpx.AsyncClient:
        """A new client of this service (30 s timeout, up to 100 connections by default)."""
        defaults: dict[str, Any] = {"timeout": 30, "limits": httpx.Limits(max_connections=100)}
        return httpx.AsyncClient(base_url=self.url, **{**defaults, **options})

    @property
    def http(self) -> httpx.AsyncClient:
        """The client opened by ``async with``."""
        assert self._http is not None, "use `async with` the service for its client"
        return self._http

    # --- context managers ----------------------------------------------------------------

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def __aenter__(self) -> ServiceProcess:
        await asyncio.to_thread(self.start)
        self._http = self.client()
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            if self._http is not None:
                await self._http.aclose()
        finally:
            await asyncio.to_thread(self.stop)


@contextlib.asynccontextmanager
async def running(*services: ServiceProcess) -> AsyncIterator[list[ServiceProcess]]:
    """Start ``services`` at once (replicas may share one Valkey); stop them all at the end."""
    async with contextlib.AsyncExitStack() as stack:
        yield list(await asyncio.gather(*(stack.enter_async_context(s) for s in services)))


# The ``new_service`` fixture: ``new_service(name, **env)``, a service to ``async with``.
NewService = Callable[..., ServiceProcess]


def cli_run(service: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one on-call command (``python -m orchestrator ...``) with the service's settings."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=service.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def cli(service: ServiceProcess, *args: str, code: int = 0) -> str:
    """Run one on-call command, check its exit code; returns its stdout."""
    done = cli_run(service, *args)
    assert done.returncode == code, (
        f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def cli_json(service: ServiceProcess, *args: str) -> Any:
    return json.loads(cli(service, *args, "--json"))
