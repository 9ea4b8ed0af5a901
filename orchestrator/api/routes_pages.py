"""The service's own pages: ``/status`` (live status for operators) and ``/viewer`` (the
reference viewer), with their assets under ``/static/``.

Everything a page loads comes from this service: the files in ``orchestrator/static`` (the
LiveKit client library is bundled there by ``scripts/build-assets.sh`` from npm, pinned by
``web/package-lock.json``, never fetched at run time). The Content-Security-Policy allows the
page's own origin, plus, for ``/viewer``, the LiveKit URL browsers are given (its ``ws``/``wss``
and ``http``/``https`` forms): no CDN, no external font, no inline script.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from orchestrator.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
_TYPES = {
    "pages.css": "text/css; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "vendor/livekit-client.umd.js": "text/javascript; charset=utf-8",
}
_BASE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def livekit_origins(url: str) -> str:
    """The LiveKit URL's origin in its websocket and HTTP forms (the client uses both)."""
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    host = parts.netloc
    return f"{'wss' if secure else 'ws'}://{host} {'https' if secure else 'http'}://{host}"


@router.get("/status")
async def status_page() -> FileResponse:
    headers = {**_PAGE_HEADERS, "Content-Security-Policy": f"{_BASE_CSP}; connect-src 'self'"}
    return FileResponse(STATIC / "status.html", media_type="text/html", headers=headers)


@router.get("/viewer")
async def viewer_page(request: Request) -> FileResponse:
    livekit = livekit_origins(request.app.state.services.settings.browser_livekit_url)
    csp = f"{_BASE_CSP}; connect-src 'self' {livekit}; media-src 'self' blob:"
    headers = {**_PAGE_HEADERS, "Content-Security-Policy": csp}
    return FileResponse(STATIC / "viewer.html", media_type="text/html", headers=headers)


@router.get("/static/{name:path}")
async def static_asset(name: str) -> FileResponse:
    media_type = _TYPES.get(name)
    if media_type is None:
        raise NotFound(f"no static asset {name}")
    return FileResponse(
        STATIC / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
