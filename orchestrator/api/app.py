"""The app factory. Clients are owned by the lifespan, never created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from orchestrator import __version__
from orchestrator.api import (
    body_guard,
    errors,
    routes_admin,
    routes_docs,
    routes_health,
    routes_livekit,
    routes_pages,
    routes_streams,
)
from orchestrator.api.stats_body import StatsBodies
from orchestrator.api.stats_fast import StatsFastPath
from orchestrator.api.timing import RequestTiming
from orchestrator.auth import KeyRing
from orchestrator.config import Settings
from orchestrator.metrics import ServiceMetrics
from orchestrator.wiring import open_services


def create_app(
    settings: Settings,
    *,
    keyring: KeyRing | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """``on_shutdown`` runs after the services closed (the CLI stops the embedded Valkey)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with open_services(settings, keyring=keyring) as services:
                app.state.services = services
                app.state.readiness = routes_health.shared_readiness(services)
                yield
        finally:
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="CCTV ingest orchestrator",
        version=__version__,
        description=(
            "Viewer slots (leases) for CCTV cameras, one WHIP pusher per watched camera, "
            "and LiveKit viewer tokens. Authenticate with `Authorization: Bearer <API key>`."
        ),
        lifespan=lifespan,
        docs_url=None,  # routes_docs serves /docs without a CDN; no /redoc
        redoc_url=None,
        redirect_slashes=False,  # a redirect would build its Location from the Host header
    )
    app.add_middleware(StatsFastPath, owner=lambda: app)
    body_guard.install(app, settings)  # timing and CORS wrap its early answers
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag", "Age", "Retry-After"],  # the stats poll and the 429 wait
        )
    app.add_middleware(RequestTiming, metrics=lambda: _metrics_of(app))
    errors.install(app, quota_retry_after_seconds=settings.quota_retry_after_seconds)
    app.state.stats_bodies = StatsBodies()
    routes = (
        routes_streams,
        routes_admin,
        routes_livekit,
        routes_health,
        routes_docs,
        routes_pages,
    )
    for module in routes:
        app.include_router(module.router)
    return app


def _metrics_of(app: FastAPI) -> ServiceMetrics | None:
    services = getattr(app.state, "services", None)
    return services.metrics if services is not None else None
