"""Liveness, readiness and the Prometheus endpoint (all public: no secrets inside)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.api.deps import ServicesDep
from orchestrator.api.schemas import Health, Readiness
from orchestrator.errors import OrchestratorError
from orchestrator.stats_snapshot import SharedReads
from orchestrator.wiring import Services

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 1.5


@router.get("/health")
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request) -> Readiness | JSONResponse:
    """Readiness: Valkey answers and holds our scripts, the pusher runtime answers (else 503).
    The runtime's check is named after it (``docker``).

    LiveKit is checked too, but its failure only degrades the service (200, ``status:
    degraded``): reserves still work because tokens are minted locally. Requests that arrive
    while the checks run share them (every open status page polls this)."""
    shared: SharedReads[tuple[Readiness, bool]] = request.app.state.readiness
    body, critical_failed = await shared.read()
    if critical_failed:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


def shared_readiness(services: Services) -> SharedReads[tuple[Readiness, bool]]:
    """The checks, in a single flight that keeps no result (max age 0)."""
    return SharedReads(lambda: _readiness(services), 0.0)


async def _readiness(services: Services) -> tuple[Readiness, bool]:
    critical = services.readiness_probes()
    probes = {**critical, **services.degraded_probes()}
    names = list(probes)
    results = await asyncio.gather(*(_check(probes[name]) for name in names))
    checks = dict(zip(names, results, strict=True))
    degraded = sorted(name for name, state in checks.items() if state != "ok")
    body = Readiness(status="degraded" if degraded else "ok", checks=checks, degraded=degraded)
    return body, any(name in critical for name in degraded)


async def _check(probe: Callable[[], Awaitable[bool]]) -> str:
    try:
        ok = await asyncio.wait_for(probe(), timeout=CHECK_TIMEOUT_SECONDS)
    except (TimeoutError, OrchestratorError) as exc:
        return f"failed: {type(exc).__name__}"
    return "ok" if ok else "failed"


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text exposition; gauges of shared state are read from Valkey now."""
    await services.state_gauges.refresh()
    return Response(generate_latest(services.metrics_registry), media_type=CONTENT_TYPE_LATEST)
