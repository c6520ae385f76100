"""Debian's headless Chromium (libwebrtc) driven by Playwright, and a localhost origin for its pages.

Never a downloaded browser: Playwright is told to use /usr/bin/chromium. A missing browser fails
the test with the reason (``make test`` installs it), it never skips.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

CHROMIUM = "/usr/bin/chromium"
WEB_ROOT = Path(__file__).parent / "web"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # This machine has no network: stop Chromium's own background connections.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Fake camera and microphone (a beeping test pattern), granted without a prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    # Plain IP candidates instead of mDNS .local names, which peerbot could not resolve here.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@contextlib.asynccontextmanager
async def chromium_page(path: str, *, console: list[str] | None = None) -> AsyncIterator["Page"]:  # noqa: F821
    """Serve tests/web on a localhost origin and open ``path`` in headless Chromium."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    from playwright.async_api import async_playwright

    app = web.Application()
    app.router.add_static("/", WEB_ROOT)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    origin = f"http://localhost:{runner.addresses[0][1]}"
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = await browser.new_page()
                if console is not None:
                    page.on("console", lambda message: console.append(message.text))
                await page.goto(f"{origin}/{path}")
                yield page
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
