"""The service's pages in a real browser (issue 21): Debian's headless Chromium driven by
Playwright, against a real ``serve`` with real Valkey, the Docker engine running the WHIP
stand-in pushers, and the LiveKit wire fake.

- ``/status`` shows a reserve within 2 s and its release within 2 s, its quota bars match
  ``/stream/stats``, and a screenshot (kept under ``.artifacts/``) is not blank.
- Twenty open status pages cost the service one stats reader: its reads per second (its own
  ``cctv_stats_read_seconds`` metric) stay at the snapshot's rate, not the pages' poll rate.
- ``/viewer`` reserves and heartbeats, says plainly that LiveKit (the fake, which speaks no
  signalling) cannot be reached, and releases when the tab closes: within 2 s Valkey holds no
  lease and stats drop. A quota refusal shows both languages.
- With an admin key (and only then) the status page kicks a viewer and resets a camera.
- Neither page requests anything from any origin but the service (and, for the viewer, the
  LiveKit URL it was given): no CDN, no external font.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from PIL import Image, ImageStat
from playwright.async_api import Page, expect
from redis.asyncio import Redis

from orchestrator.store import keys
from tests.harness.browser import ARTIFACTS, chromium, guarded_context
from tests.harness.constants import ADMIN_KEY
from tests.harness.http import admit, camera_stats, release
from tests.harness.livekit import NewStack, base_env, pusher_env
from tests.harness.metrics import scrape, value
from tests.harness.waiting import eventually

SHOWN_WITHIN_MS = 2000  # the bound for a change to reach the page
MAX_AGE_S = 0.5  # the production default of the shared snapshot
SNAPSHOT = {"CCTV_STATS_MAX_AGE_SECONDS": str(MAX_AGE_S)}
READS = "cctv_stats_read_seconds_count"


def row(page: Page, camera_id: str) -> Any:
    return page.locator(f'tr[data-camera-id="{camera_id}"]')


async def reads(http: Any) -> float:
    return value(await scrape(http), READS)


@pytest.mark.docker
@pytest.mark.usefixtures("swept")
async def test_status_page_follows_reserves_and_releases_and_matches_stats(
    whip_pusher_image: str, new_stack: NewStack
) -> None:
    cameras = ["cam-page-1", "cam-page-2"]
    async with (
        new_stack(pusher_env(whip_pusher_image, **SNAPSHOT), cameras=cameras) as s,
        chromium() as browser,
    ):
        context, outside = await guarded_context(browser, [s.service.url])
        page = await context.new_page()
        await page.goto(f"{s.service.url}/status")
        await expect(page.locator("#no-cameras")).to_be_visible()

        first = await admit(s.http, "cam-page-1", "METRO")
        await expect(row(page, "cam-page-1")).to_be_visible(timeout=SHOWN_WITHIN_MS)
        await expect(row(page, "cam-page-1").locator(".reservations")).to_have_text(
            "1: METRO 1", timeout=SHOWN_WITHIN_MS
        )
        second = await admit(s.http, "cam-page-2", "METRO")
        await expect(row(page, "cam-page-2")).to_be_visible(timeout=SHOWN_WITHIN_MS)

        async def pusher_shown() -> bool:
            state = await row(page, "cam-page-1").locator("td").first.text_content()
            return bool(state == "RUNNING")

        await eventually(pusher_shown, 30, "the pusher's RUNNING state on the page")
        stats = (await s.http.get("/api/v1/stream/stats")).json()
        bar = page.locator('.quota[data-source="METRO"]')
        await expect(bar).to_have_attribute(
            "data-current", str(stats["source_stats"]["METRO"]["current"])
        )
        await expect(bar).to_have_attribute(
            "data-limit", str(stats["source_stats"]["METRO"]["limit"])
        )
        total = page.locator('.quota[data-source="TOTAL"]')
        await expect(total).to_have_attribute("data-current", str(stats["total"]["current"]))
        await expect(total).to_have_attribute("data-limit", str(stats["total"]["limit"]))
        await expect(page.locator('[data-dependency="valkey"]')).to_have_text("valkey: ok")

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        await page.screenshot(path=str(shot), full_page=True)
        with Image.open(shot) as image:
            grey = image.convert("L")
            colours = sum(1 for n in grey.histogram() if n)  # grey levels in use
            spread = ImageStat.Stat(grey).stddev[0]
        assert colours > 20 and spread > 5, f"the screenshot {shot} looks blank"

        await release(s.http, first["reservation_id"])
        await expect(row(page, "cam-page-1").locator(".reservations")).to_have_text(
            "0: none", timeout=SHOWN_WITHIN_MS
        )
        await release(s.http, second["reservation_id"])
        await expect(page.locator('.quota[data-source="METRO"]')).to_have_attribute(
            "data-current", "0", timeout=SHOWN_WITHIN_MS
        )
        assert outside.refused == [], f"the status page reached outside: {outside.refused}"
        await context.close()


async def test_twenty_status_pages_cost_one_stats_reader(new_stack: NewStack) -> None:
    async with new_stack(base_env(**SNAPSHOT), cameras=["cam-many"]) as s, chromium() as browser:
        await admit(s.http, "cam-many", "METRO")
        context, outside = await guarded_context(browser, [s.service.url])
        pages = [await context.new_page() for _ in range(20)]
        await asyncio.gather(*(p.goto(f"{s.service.url}/status") for p in pages))
        for page in pages:
            await expect(row(page, "cam-many")).to_be_visible(timeout=10_000)
        before, started = await reads(s.http), time.monotonic()
        await asyncio.sleep(10)
        rate = (await reads(s.http) - before) / (time.monotonic() - started)
        # 20 pages polling each second ask 20 times a second; one reader reads at most once
        # per max age (2 a second), whatever the number of pages.
        assert rate <= 1 / MAX_AGE_S * 1.2, f"{rate:.2f} stats reads a second for 20 pages"
        assert outside.refused == []
        await context.close()


@pytest.mark.parametrize("path", ["/status", "/viewer"])
async def test_pages_fit_a_phone_and_label_in_both_languages(
    new_stack: NewStack, path: str
) -> None:
    async with new_stack(base_env(**SNAPSHOT), cameras=["cam-phone"]) as s, chromium() as browser:
        await admit(s.http, "cam-phone", "METRO")
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(f"{s.service.url}{path}")
        if path == "/status":
            await expect(row(page, "cam-phone")).to_be_visible(timeout=SHOWN_WITHIN_MS)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow} px wider than a phone"
        labels = await page.locator('[lang="ar"]').all_text_contents()
        arabic = [t for t in labels if t.strip()]  # the viewer's error line is empty until used
        assert arabic and all(any("\u0600" <= ch <= "\u06ff" for ch in t) for t in arabic)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"{path.strip('/')}-phone.png"), full_page=True)
        await context.close()


async def test_viewer_page_reserves_heartbeats_says_livekit_is_unreachable_and_releases_on_close(
    client: Redis, new_stack: NewStack
) -> None:
    camera_id = "cam-viewer"
    async with new_stack(base_env(**SNAPSHOT), cameras=[camera_id]) as s, chromium() as browser:
        context, outside = await guarded_context(browser, [s.service.url, s.fake.url])
        page = await context.new_page()
        await page.goto(f"{s.service.url}/viewer")
        await page.fill("#api-key", ADMIN_KEY)
        await page.fill("#camera-id", camera_id)
        await page.fill("#source", "METRO")
        await page.click("#watch")
        await expect(page.locator("#reservation-id")).not_to_be_empty(timeout=10_000)
        rid = await page.locator("#reservation-id").text_content()
        assert rid
        member = await client.hget(keys.reservation(rid), "member")
        assert member, "no lease in Valkey for the page's reservation"
        first_expiry = await client.zscore(keys.ALL_LEASES, member)
        assert first_expiry is not None

        # LiveKit's signalling is not part of the fake: the page says so, in words.
        await expect(page.locator("#error")).to_contain_text(
            "Could not connect to the video server", timeout=20_000
        )
        await expect(page.locator("#heartbeats")).to_have_text("2", timeout=20_000)
        renewed = await client.zscore(keys.ALL_LEASES, member)
        assert renewed is not None and renewed > first_expiry, "heartbeats did not renew"
        assert (await camera_stats(s.http, camera_id))["reserved_count"] == 1

        await page.close(run_before_unload=True)  # the tab closes: pagehide, keepalive DELETE
        closed_at = time.monotonic()

        async def released() -> bool:
            return await client.zscore(keys.ALL_LEASES, member) is None

        async def stats_dropped() -> bool:
            return bool((await camera_stats(s.http, camera_id))["reserved_count"] == 0)

        await eventually(released, SHOWN_WITHIN_MS / 1000, "the lease gone after the tab closed")
        await eventually(stats_dropped, SHOWN_WITHIN_MS / 1000, "stats dropped after the close")
        assert time.monotonic() - closed_at <= SHOWN_WITHIN_MS / 1000 + 0.5
        assert await client.exists(keys.reservation(rid)) == 0
        assert outside.refused == [], f"the viewer page reached outside: {outside.refused}"
        await context.close()


async def test_viewer_page_shows_a_quota_refusal_in_both_languages(new_stack: NewStack) -> None:
    limits = json.dumps({"METRO": 1, "TOTAL": 10})
    env = base_env(CCTV_SOURCE_LIMITS=limits, **SNAPSHOT)
    async with new_stack(env, cameras=["cam-full"]) as s, chromium() as browser:
        await admit(s.http, "cam-full", "METRO")  # the agency's one slot
        context, _ = await guarded_context(browser, [s.service.url, s.fake.url])
        page = await context.new_page()
        await page.goto(f"{s.service.url}/viewer")
        await page.fill("#api-key", ADMIN_KEY)
        await page.fill("#camera-id", "cam-full")
        await page.fill("#source", "METRO")
        await page.click("#watch")
        await expect(page.locator("#error")).to_contain_text("METRO", timeout=10_000)
        arabic = page.locator("#error-ar")
        await expect(arabic).to_be_visible()
        text = await arabic.text_content()
        assert text and any("\u0600" <= ch <= "\u06ff" for ch in text), text
        await expect(page.locator("#status")).to_have_text("Not watching.")
        await context.close()


async def test_status_page_admin_actions_need_the_key_and_kick_and_reset(
    client: Redis, new_stack: NewStack
) -> None:
    async with new_stack(base_env(**SNAPSHOT), cameras=["cam-admin"]) as s, chromium() as browser:
        kept = await admit(s.http, "cam-admin", "METRO")
        kicked = await admit(s.http, "cam-admin", "METRO")
        context, outside = await guarded_context(browser, [s.service.url])
        page = await context.new_page()
        await page.goto(f"{s.service.url}/status")
        await expect(row(page, "cam-admin")).to_be_visible(timeout=SHOWN_WITHIN_MS)
        reset = row(page, "cam-admin").get_by_role("button", name="Reset")
        await expect(reset).to_be_hidden()  # public view: no admin action

        await page.fill("#admin-key", "not-a-key")
        await page.click("#admin-form button[type=submit]")
        await expect(page.locator("#admin-message")).to_contain_text("Key refused")
        await expect(reset).to_be_hidden()

        await page.fill("#admin-key", ADMIN_KEY)
        await page.click("#admin-form button[type=submit]")
        await expect(reset).to_be_visible(timeout=SHOWN_WITHIN_MS)
        assert await page.evaluate("sessionStorage.getItem('cctv-admin-key')") == ADMIN_KEY

        await row(page, "cam-admin").get_by_role("button", name="Viewers").click()
        target = page.locator(f'li[data-reservation-id="{kicked["reservation_id"]}"]')
        await expect(target).to_be_visible()
        await target.get_by_role("button", name="Kick").click()
        await expect(target).to_be_hidden(timeout=5000)
        assert await client.exists(keys.reservation(kicked["reservation_id"])) == 0
        assert await client.exists(keys.reservation(kept["reservation_id"])) == 1

        await reset.click()
        await expect(page.locator("#admin-message")).to_contain_text(
            "Reset cam-admin", timeout=10_000
        )
        assert await client.exists(keys.reservation(kept["reservation_id"])) == 0
        await expect(page.locator('.quota[data-source="METRO"]')).to_have_attribute(
            "data-current", "0", timeout=SHOWN_WITHIN_MS
        )
        assert outside.refused == []
        await context.close()
