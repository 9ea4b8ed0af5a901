"""Hole 8 of the hostile-input probe against a real ``serve`` process and real Valkey (no Docker).

Token-bearing answers are not cacheable; ``/docs`` loads nothing from another origin; no
redirect copies the Host header; ``limit`` takes a JSON integer and nothing else.

One service serves the whole module: its tests read pages, and write only keys no other test
here touches (camera ``cam-1``, ``METRO``'s limit).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from orchestrator.store.embedded import EmbeddedValkey
from tests.apt_tools import apt_binaries
from tests.harness.http import ADMIN_HEADERS
from tests.harness.service import ServiceProcess
from tests.harness.store import flushed

JSON_HEADERS = {**ADMIN_HEADERS, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def service(
    valkey_server: EmbeddedValkey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One ``serve`` (pushers off, no Docker engine) for the module, on a flushed Valkey."""
    tmp = tmp_path_factory.mktemp("docs")
    url = flushed(valkey_server.url)
    with ServiceProcess("api", tmp, url, {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}) as svc:
        yield svc


@pytest.fixture
async def http(service: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with service.client(follow_redirects=False) as http:
        yield http


def assert_not_cacheable(response: httpx.Response) -> None:
    assert response.headers.get("cache-control") == "no-store", response.headers
    assert response.headers.get("pragma") == "no-cache", response.headers


async def test_reserve_and_heartbeat_answers_are_never_stored(http: httpx.AsyncClient) -> None:
    camera = {"name": "Gate 1", "rtsp_url": "rtsp://127.0.0.1/cam-1"}
    put = await http.put("/api/v1/cameras/cam-1", json=camera, headers=ADMIN_HEADERS)
    assert put.status_code == 201, put.text
    body = {"camera_id": "cam-1", "user_id": "op-1", "source": "METRO"}
    reserve = await http.post("/api/v1/stream/reserve", json=body, headers=ADMIN_HEADERS)
    assert reserve.status_code == 201, reserve.text
    assert reserve.json()["token"]
    assert_not_cacheable(reserve)
    rid = reserve.json()["reservation_id"]
    heartbeat = await http.post(f"/api/v1/stream/heartbeat/{rid}", headers=ADMIN_HEADERS)
    assert heartbeat.status_code == 200, heartbeat.text
    assert_not_cacheable(heartbeat)


ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def referenced_urls(html: str) -> list[str]:
    """Every URL the page names: src/href attributes, and the spec URL in its script."""
    attributes = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, re.IGNORECASE)
    spec = re.findall(r"""\burl\s*:\s*["']([^"']*)["']""", html)
    return attributes + spec


async def test_docs_page_and_its_assets_come_from_the_service_itself(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "SwaggerUIBundle" in html
    assert not re.search(r"https?://|//[A-Za-z0-9]", html), "no absolute URL, no CDN"
    assert '"validatorUrl": null' in html, "no badge fetched from validator.swagger.io"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "http" not in csp and "*" not in csp

    urls = referenced_urls(html)
    assets = [u for u in urls if u.startswith("/docs/assets/")]
    assert {Path(u).suffix for u in assets} == set(ASSET_TYPES), urls
    for url in urls:
        absolute = urljoin(str(page.url), url)
        assert urlsplit(absolute).netloc == page.url.netloc.decode(), url
        response = await http.get(url)
        assert response.status_code == 200, url
        wanted = ASSET_TYPES.get(Path(url).suffix, "application/json")
        assert response.headers["content-type"].startswith(wanted), (url, response.headers)
        assert len(response.content) > 100, url
    bundle = await http.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content

    assert (await http.get("/redoc")).status_code == 404
    for name in ("index.html", "swagger-initializer.js", "..%2f__init__.py", "%2e%2e"):
        missing = await http.get(f"/docs/assets/{name}")
        assert missing.status_code == 404, name


async def test_docs_render_in_a_browser_that_reaches_only_loopback(
    http: httpx.AsyncClient,
) -> None:
    """Headless Chromium, every host name but loopback unresolvable: Swagger UI still renders
    every operation, so nothing it needs comes from elsewhere."""
    [chromium] = apt_binaries("chromium-headless-shell", "chromium-headless-shell")
    command = [
        str(chromium),
        "--no-sandbox",
        "--disable-gpu",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=10000",
        "--dump-dom",
        str(http.base_url.join("/docs")),
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'class="swagger-ui' in dom, dom[:2000]
    for path in ("/api/v1/stream/reserve", "/api/v1/cameras/{camera_id}", "/health"):
        assert f'data-path="{path}"' in dom, path


@pytest.mark.parametrize(
    "path",
    ["/api/v1/cameras/", "/api/v1/stream/stats/", "/health/", "/docs/", "/openapi.json/"],
)
async def test_no_redirect_copies_a_forged_host_header(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path, headers={**ADMIN_HEADERS, "Host": "evil.example"})
    assert not response.is_redirect, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert "evil.example" not in response.text
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_a_limit_is_a_json_integer_and_nothing_else(http: httpx.AsyncClient) -> None:
    """``false`` is not 0 and ``"5"`` is not 5. ``5.0`` is accepted as 5: OpenAPI 3.1's
    ``type: integer`` (JSON Schema) holds it, and the schemathesis run sends such values."""
    url = "/api/v1/limits/METRO"
    first = await http.put(url, json={"limit": 7}, headers=ADMIN_HEADERS)
    assert first.status_code == 200, first.text
    for value in (False, True, "5", "5.0", "", None, [5], {"n": 5}, 5.5, -1, 10**10):
        refused = await http.put(url, json={"limit": value}, headers=ADMIN_HEADERS)
        assert refused.status_code == 422, (value, refused.text)
        assert refused.json()["error"]["code"] == "VALIDATION_ERROR", value
        assert refused.json()["error"]["field"] == "limit", value
    for raw in (b'{"limit": false}', b'{"limit": true}', b'{"limit": "8"}', b'{"limit": 1.5}'):
        refused = await http.put(url, content=raw, headers=JSON_HEADERS)
        assert refused.status_code == 422, (raw, refused.text)
    after = await http.put(url, json={"limit": 8}, headers=ADMIN_HEADERS)
    assert after.json() == {"source": "METRO", "limit": 8, "previous": 7}, "nothing was written"
    integral = await http.put(url, content=b'{"limit": 9.0}', headers=JSON_HEADERS)
    assert integral.json() == {"source": "METRO", "limit": 9, "previous": 8}
