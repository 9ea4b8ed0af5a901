"""Run the real ``cctv-orchestrator serve`` as a child process (several may share one Valkey).

Each process logs to its own file under the test's tmp dir; a failing test prints the tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.live_server import free_port

ADMIN_KEY = "lifecycle-admin-key-0123456789abcdef"
LIVEKIT_SECRET = "lifecycle-secret-at-least-32-bytes-long"


class ServiceProcess:
    def __init__(self, name: str, tmp: Path, valkey_url: str, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        keys = tmp / "keys.json"
        if not keys.exists():
            keys.write_text(json.dumps([{"name": "admin", "role": "admin", "key": ADMIN_KEY}]))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CCTV_")},
            "VALKEY_URL": valkey_url,
            "CCTV_PORT": str(self.port),
            "CCTV_DATA_DIR": str(tmp / f"{name}-data"),
            "CCTV_API_KEYS_FILE": str(keys),
            "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
            "CCTV_LIVEKIT_ENABLED": "false",  # no LiveKit server unless a test brings a fake
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "serve", "--log-level", "info"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name} did not answer within 30 s:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

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

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
