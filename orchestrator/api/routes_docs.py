"""``/docs``: Swagger UI served by the service itself, never from a CDN, so it works offline.

The assets come from the pinned ``swagger-ui-bundle-v2`` wheel (swagger-ui 5.31, Apache-2.0),
served under ``/docs/assets/``. The page's Content-Security-Policy allows its own origin only
(and its one inline script, by hash): a browser fetches nothing from elsewhere, not even the
swagger.io validator badge, which is switched off. ``/redoc`` is not served.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from orchestrator.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = "/docs/assets"
_DIR = Path(str(swagger_ui_path))
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _csp(html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None, **(request.app.swagger_ui_parameters or {})},
    )
    html = bytes(page.body).decode()
    page.headers["Content-Security-Policy"] = _csp(html)
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


@router.get(ASSETS + "/{name}")
async def swagger_ui_asset(name: str) -> FileResponse:
    media_type = _TYPES.get(name)
    if media_type is None:
        raise NotFound(f"no docs asset {name}")
    return FileResponse(
        _DIR / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
