"""Debian's headless Chromium driven by Playwright (no browser download), with a fresh profile
per launch, and a guard that records and refuses every request a page makes outside the
origins a test allows (the pages must need nothing but the service)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Route, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(
    os.environ.get("CCTV_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts")
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make tools` (Debian's chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class OutsideRequests:
    """Requests a page tried to send to an origin the test did not allow (refused)."""

    allowed: set[str]
    refused: list[str] = field(default_factory=list)

    async def route(self, route: Route) -> None:
        url = route.request.url
        if origin(url) in self.allowed or url.startswith(("data:", "blob:")):
            await route.continue_()
        else:
            self.refused.append(url)
            await route.abort("blockedbyclient")


async def guarded_context(
    browser: Browser, allowed: Iterable[str]
) -> tuple[BrowserContext, OutsideRequests]:
    """A new context (its own profile state) whose requests outside ``allowed`` are refused
    and recorded."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    guard = OutsideRequests({origin(u) for u in allowed})
    await context.route("**/*", guard.route)
    return context, guard
