"""The on-call commands of ``cctv-orchestrator`` (thin: parse, call :class:`OnCall`, print).

They talk to the configured Valkey, Docker engine and LiveKit, the same settings as
``serve``; without ``VALKEY_URL`` they use the embedded server a local ``serve`` runs in
``CCTV_DATA_DIR``. Safe while the service runs. Exit codes: 0 done, 1 refused or aborted,
2 a dependency failed or the input is invalid.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from orchestrator.config import Settings
from orchestrator.errors import InvalidInput, OrchestratorError
from orchestrator.logs import configure
from orchestrator.oncall import views
from orchestrator.oncall.actions import OnCall
from orchestrator.oncall.bundle import write_bundle
from orchestrator.oncall.render import table, to_json
from orchestrator.store.embedded import SOCKET_NAME
from orchestrator.wiring import open_services

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]


def settings_for_cli() -> Settings:
    settings = Settings()
    if not settings.valkey_url:
        socket_path = (settings.data_dir / SOCKET_NAME).resolve()
        if not socket_path.exists():
            raise InvalidInput(
                f"no Valkey: set VALKEY_URL, or run this where `cctv-orchestrator serve` keeps "
                f"its embedded server ({socket_path} not found; CCTV_DATA_DIR)"
            )
        settings.valkey_url = f"unix://{socket_path}"
    return settings


def run(action: Callable[[OnCall], Awaitable[T]]) -> T:
    """Open the services (no background loops, no camera seeding) and run ``action``."""
    configure("warning")  # logs go to stderr; stdout stays clean for --json
    logging.getLogger("orchestrator").setLevel(logging.WARNING)

    async def main() -> T:
        settings = settings_for_cli()
        async with open_services(settings, run_loops=False, seed_cameras=False) as services:
            return await action(OnCall(services))

    try:
        return asyncio.run(main())
    except OrchestratorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def emit(as_json: bool, data: Any, text: str) -> None:
    typer.echo(to_json(data) if as_json else text)


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(cameras)
    app.command()(reservations)
    app.command("reset-camera")(reset_camera)
    app.command()(reset)
    app.command()(recount)
    app.command()(reconcile)
    app.command()(kick)
    app.command("debug-bundle")(debug_bundle)


def status(as_json: JsonOpt = False) -> None:
    """Dependencies, reservations, sources, pushers, containers and drift.

    Sources show live leases (the truth), the stored counter and the limit. Each drift line
    (a counter that differs from its leases, an orphan, dead or missing container) names the
    command that fixes it."""
    result = run(views.status)
    if as_json:
        emit(True, result.to_json(), "")
        return
    deps = "  ".join(f"{k}: {v}" for k, v in result.dependencies.items())
    containers = "unknown" if result.containers is None else str(len(result.containers))
    sources = [asdict(s) for s in result.sources]
    sources.append({"source": "TOTAL", "current": result.reservations, "limit": result.total_limit})
    lines = [
        deps,
        f"reservations: {result.reservations}   containers: {containers}",
        "",
        table(sources, ["source", "current", "counter", "limit"]),
        "",
        "pushers: " + "  ".join(f"{k} {v}" for k, v in result.pushers.items()),
        "",
        table([asdict(c) for c in result.containers or []]),
        "",
        "drift: none" if not result.drift else "drift:\n  " + "\n  ".join(result.drift),
    ]
    typer.echo("\n".join(lines))


def cameras(as_json: JsonOpt = False) -> None:
    """Cameras with pusher state, reservations and connected viewers."""
    rows = run(views.cameras)
    emit(as_json, rows, table(rows))


def reservations(
    camera: Annotated[str | None, typer.Option(help="only this camera's reservations")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Live reservations, soonest expiry first."""
    rows = run(lambda oncall: views.reservations(oncall, camera))
    emit(as_json, rows, table(rows))


def reset_camera(camera_id: str, as_json: JsonOpt = False) -> None:
    """End one camera's viewing now (release, disconnect, stop).

    Every reservation is released through the release script (counters stay right), its
    viewers are removed from the LiveKit room, and the pusher stops without the drain grace.
    The camera's LiveKit ingress is kept."""
    report = run(lambda oncall: oncall.reset_camera(camera_id))
    emit(as_json, asdict(report), _reset_text(report))


def _reset_text(report: Any) -> str:
    left = "a container is still present" if report.container_left else "no container"
    text = (
        f"{report.camera_id}: released {report.released}, disconnected {report.kicked}, "
        f"pusher {report.state}, {left}"
    )
    return text + "".join(f"\n  note: {n}" for n in report.notes)


def reset(
    all_cameras: Annotated[bool, typer.Option("--all", help="reset every camera")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Reset every camera (--all), then rebuild every counter.

    Every viewer is disconnected and every pusher stops. Asks for confirmation unless --yes;
    refuses without a terminal."""
    if not all_cameras:
        typer.echo("refusing: pass --all to reset every camera (or use reset-camera ID)", err=True)
        raise typer.Exit(1)
    if not yes:
        if not sys.stdin.isatty():
            typer.echo("refusing: not a terminal; pass --yes to confirm", err=True)
            raise typer.Exit(1)
        typer.confirm("Disconnect every viewer and stop every pusher?", abort=True)
    resets, recounts = run(lambda oncall: oncall.reset_all())
    data = {"cameras": [asdict(r) for r in resets], "recount": [asdict(r) for r in recounts]}
    text = "\n".join([_reset_text(r) for r in resets] or ["no camera had state"])
    emit(as_json, data, text + "\n\n" + table(data["recount"]))


def recount(
    source: Annotated[str | None, typer.Argument(help="one source; default: every source")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild counters from the live leases (one SOURCE, or all)."""
    rows = [asdict(r) for r in run(lambda oncall: oncall.recount(source))]
    for row in rows:
        row["repaired"] = (row["before"] or 0) != row["after"]  # absent reads as 0
    emit(as_json, rows, table(rows, ["source", "before", "after", "repaired"]))


def reconcile(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the plan, change nothing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """One reconcile pass (--dry-run: print the plan, change nothing).

    The plan lists orphan, dead and missing containers, cameras that need a pusher, and
    drifted counters. Applying also runs the LiveKit pass (ghost viewers, orphan ingresses)."""
    plan = run(lambda oncall: oncall.reconcile(dry_run=dry_run))
    data = asdict(plan)
    rows = [
        {"kind": c.kind, "camera_id": c.camera_id, "container": c.container_id[:12],
         "reason": c.reason}
        for c in plan.corrections
    ] + [
        {"kind": "counter", "camera_id": "-", "container": "-",
         "reason": f"{c.source}: stored {c.raw!r}, live {c.live}"}
        for c in plan.counters
    ]  # fmt: skip
    head = "plan (dry run, nothing changed):" if dry_run else "applied:"
    text = "\n".join([head, table(rows), *(f"note: {n}" for n in plan.notes)])
    if plan.presence:
        text += "\nlivekit: " + ", ".join(f"{k} {v}" for k, v in plan.presence.items())
    emit(as_json, data, text)


def kick(reservation_id: str, as_json: JsonOpt = False) -> None:
    """Release one reservation and remove its viewer from the room."""
    result = run(lambda oncall: oncall.kick(reservation_id))
    text = (
        f"{reservation_id}: released {'yes' if result.released else 'no (already gone)'}, "
        f"participant removed {'yes' if result.participant_removed else 'no'}"
    )
    emit(as_json, asdict(result), text + "".join(f"\n  note: {n}" for n in result.notes))


def debug_bundle(
    output: Annotated[Path, typer.Option("-o", "--output", help="the .tar.gz to write")],
    service_log: Annotated[
        Path | None, typer.Option(help="also include the tail of this service log file")
    ] = None,
) -> None:
    """Write a redacted tar.gz of state, stats, containers and logs."""
    names = run(lambda oncall: write_bundle(oncall, output, service_log))
    typer.echo(f"wrote {output} ({len(names)} files)")
