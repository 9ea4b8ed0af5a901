"""``cctv-orchestrator``: the service and the on-call commands. A thin command layer."""

from __future__ import annotations

import gc
import logging
import sys
import warnings
from typing import Annotated

import typer
import uvicorn

from orchestrator.api.app import create_app
from orchestrator.api.http_protocol import protocol_for
from orchestrator.auth import Principal, Role, dev_admin_key
from orchestrator.config import Settings
from orchestrator.logs import configure
from orchestrator.oncall import commands
from orchestrator.secret_policy import (
    LIVEKIT_DEV_SECRET,
    MIN_SECRET_BYTES,
    is_loopback,
    unsafe_secrets,
)
from orchestrator.store.embedded import EmbeddedValkey
from orchestrator.wiring import keyring_from

app = typer.Typer(
    help=(
        "CCTV camera-to-LiveKit ingest orchestrator. Settings come from the environment "
        "(VALKEY_URL, LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, DOCKER_HOST, CCTV_*); "
        "see docs/configuration.md. The on-call commands are safe while the service runs "
        "and change state only through its Lua scripts; see docs/runbook.md."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: paragraphs re-wrap to the terminal
    add_completion=False,
)
log = logging.getLogger("orchestrator")


@app.callback()
def _root() -> None:
    """Run ``cctv-orchestrator COMMAND --help`` for each command's options."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (CCTV_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (CCTV_PORT, default 8086)")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the HTTP API. Without VALKEY_URL, start an embedded Valkey in CCTV_DATA_DIR."""
    configure(log_level)
    settings = Settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    keyring = keyring_from(settings)
    if not is_loopback(settings.host) and (problems := unsafe_secrets(settings, keyring)):
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        typer.echo(
            f"refusing to serve on {settings.host} with guessable secrets: set secrets of "
            f"{MIN_SECRET_BYTES}+ bytes (e.g. `openssl rand -base64 32`), or bind 127.0.0.1",
            err=True,
        )
        raise typer.Exit(2)
    if settings.livekit_api_secret.get_secret_value() == LIVEKIT_DEV_SECRET:
        warnings.filterwarnings("ignore", message="The HMAC key is", category=UserWarning)
        log.warning("LIVEKIT_API_SECRET is LiveKit's development default; set a real secret")
    if len(keyring) == 0:
        key = dev_admin_key(settings.data_dir)
        keyring.add_key(key, Principal("dev-admin", Role.ADMIN, frozenset()))
        typer.echo(
            f"No API keys configured; development admin key (kept in {settings.data_dir}):\n"
            f"  {key}\n",
            err=True,
        )
    embedded = None
    if not settings.valkey_url:
        embedded = EmbeddedValkey(settings.data_dir)
        settings.valkey_url = embedded.start()  # main thread: the server dies with us
        log.info("embedded valkey started", extra={"data_dir": str(settings.data_dir)})
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the embedded server is
    # stopped from the app's lifespan (and by the finally below on any other exit).
    stop = embedded.stop if embedded is not None else None
    # Long-lived objects (app, settings, clients) are frozen out of the collector and young
    # collections run less often: fewer multi-millisecond GC pauses on the request path.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        uvicorn.run(
            create_app(settings, keyring=keyring, on_shutdown=stop),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            timeout_keep_alive=settings.http_keep_alive_seconds,
            http=protocol_for(settings),  # request headers bounded in time and size
        )
    finally:
        if embedded is not None:
            embedded.stop()


commands.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
