"""The SRE console in a real browser: headless Chromium (Debian's, driven by Playwright) loads the
page served for the live stack, sees every region, the topology and a drill report, and watches a
figure change after traffic. A screenshot is saved under ``tests/artifacts/``.

Playwright's own browser download cannot run here, so the test uses an installed Chromium
(``$MEMORYBANK_CHROMIUM``, else ``chromium`` on the PATH) and is skipped, saying so, without one."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from ops.console.server import make_app

from .conftest import REGIONS, LiveStack

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    for found in (os.environ.get("MEMORYBANK_CHROMIUM"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if found and os.access(found, os.X_OK):
            return found
    return None


async def test_console_shows_the_live_stack(live: LiveStack, http: httpx.AsyncClient,
                                            tmp_path: Path):
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium found: install one (Debian: apt-get install chromium) or set "
                    "MEMORYBANK_CHROMIUM to its path; Playwright's own download cannot be used")
    playwright = pytest.importorskip("playwright.async_api")

    data_dir = tmp_path
    (data_dir / "drills").mkdir()
    for suffix in ("json", "html"):
        (data_dir / "drills" / f"20261130T000000Z-kill-hub.{suffix}").write_text("{}")
    runner = web.AppRunner(make_app(live.topology, data_dir, every_s=0.5))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=browser_path, args=FLAGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"http://127.0.0.1:{port}/")
            for region in REGIONS:
                await page.wait_for_selector(f"[data-testid=region-{region}]")
            await page.wait_for_function(
                "document.querySelector('[data-testid=region-ams] [data-testid=status]')"
                ".textContent === 'up'", timeout=15000)
            rps = "[data-testid=region-ams] [data-testid=rps]"
            await page.wait_for_function(  # a second sample: a rate can be said
                f"document.querySelector('{rps}').textContent !== '\u2013'", timeout=15000)
            before = await page.text_content(rps)

            headers = live.auth(f"ob-console-{uuid.uuid4().hex[:8]}")
            for _ in range(40):
                r = await http.get(f"{live.topology.edges['ams']}/v1/regions", headers=headers)
                assert r.status_code == 200
            await page.wait_for_function(
                f"document.querySelector('{rps}').textContent !== {before!r}", timeout=15000)
            after = await page.text_content(rps)
            p95 = await page.text_content("[data-testid=region-ams] [data-testid=p95-edge]")
            assert p95 and p95.endswith("ms"), p95

            topology = await page.text_content("[data-testid=topology]")
            assert topology and "central writer" in topology
            assert all(live.topology.hubs[r] in topology for r in REGIONS)
            drill = page.locator("[data-testid=drill]")
            assert "20261130T000000Z-kill-hub" in (await drill.text_content() or "")
            assert await drill.locator("a").count() == 2

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "console.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"console screenshot: {shot} (requests/s in ams {before} -> {after})")
            await browser.close()
        # The report itself is served; a name that leaves the drills folder is not.
        base = f"http://127.0.0.1:{port}/drills"
        assert (await http.get(f"{base}/20261130T000000Z-kill-hub.json")).status_code == 200
        assert (await http.get(f"{base}/..%2Fdrills")).status_code == 404
    finally:
        await runner.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
    assert before != after
