"""``debug-bundle``: one tar.gz with what a support engineer needs, secrets removed.

Every file passes through :class:`Redactor` before it is written: URL credentials are masked
wherever they appear, and every secret the service knows (each camera's RTSP URL, its
password and query, the LiveKit secret, API keys, the Valkey password) is replaced
literally, so a secret that leaked into a container's own log is removed too. The archive is
written to a temporary file (mode 0600) and renamed into place: no half-written bundle.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import socket
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.domain.redact import Redactor, redact_url, url_secrets
from orchestrator.errors import OrchestratorError
from orchestrator.oncall import views
from orchestrator.oncall.actions import OnCall

CONTAINER_LOG_LINES = 200
SERVICE_LOG_BYTES = 2 * 1024 * 1024


async def known_secrets(oncall: OnCall) -> list[str]:
    settings = oncall.s.settings
    secrets = [settings.livekit_api_secret.get_secret_value()]
    if settings.admin_api_key is not None:
        secrets.append(settings.admin_api_key.get_secret_value())
    secrets += url_secrets(settings.valkey_url or "")
    for camera in await oncall.s.registry.all():
        secrets += url_secrets(camera.rtsp_url)
    return secrets


def settings_view(oncall: OnCall) -> dict[str, Any]:
    data: dict[str, Any] = oncall.s.settings.model_dump(mode="json")  # SecretStr -> '**********'
    if data.get("valkey_url"):
        data["valkey_url"] = redact_url(str(data["valkey_url"]))
    return data


async def write_bundle(oncall: OnCall, output: Path, service_log: Path | None = None) -> list[str]:
    """Collect, redact and write the bundle; returns the names of the files inside."""
    scrub = Redactor(await known_secrets(oncall))
    files: dict[str, str] = {}

    async def add(name: str, collect: Any) -> None:
        try:
            if callable(collect):
                collect = collect()
            data = await collect if inspect.isawaitable(collect) else collect
        except OrchestratorError as exc:  # one part failing must not lose the others
            data = {"error": f"{type(exc).__name__}: {exc}"}
        files[name] = data if isinstance(data, str) else json.dumps(data, indent=2, default=str)

    await add("settings.json", settings_view(oncall))
    await add("status.json", lambda: _status(oncall))
    await add("stats.json", lambda: _stats(oncall))
    await add("cameras.json", lambda: views.cameras(oncall))
    await add("reservations.json", lambda: views.reservations(oncall, None))
    try:
        listing = await oncall.s.runtime.list_managed()
    except OrchestratorError as exc:
        listing = []
        files["containers.json"] = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
    else:
        files["containers.json"] = json.dumps(
            [asdict(views.ContainerRow.of(c)) for c in listing], indent=2
        )
    for info in listing:
        await add(
            f"logs/{info.name}.log",
            lambda i=info: oncall.s.runtime.logs(i.ref, CONTAINER_LOG_LINES),
        )
    if service_log is not None:
        files["logs/service.log"] = _tail(service_log, SERVICE_LOG_BYTES)
    manifest = {
        "version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "files": sorted(files),
        "redaction": "URL credentials and every known secret are replaced by ***",
    }
    files["manifest.json"] = json.dumps(manifest, indent=2)
    _write_tar(output, {name: scrub(text) for name, text in files.items()})
    return sorted(files)


async def _status(oncall: OnCall) -> dict[str, Any]:
    return (await views.status(oncall)).to_json()


async def _stats(oncall: OnCall) -> dict[str, Any]:
    return asdict(await oncall.s.streams.stats())


def _tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(could not read {path}: {exc.strerror})"


def _write_tar(output: Path, files: dict[str, str]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bundle-", suffix=".tar.gz", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, text in sorted(files.items()):
                data = text.encode()
                member = tarfile.TarInfo(f"cctv-debug/{name}")
                member.size, member.mtime, member.mode = len(data), int(time.time()), 0o600
                tar.addfile(member, io.BytesIO(data))
        Path(tmp).replace(output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
