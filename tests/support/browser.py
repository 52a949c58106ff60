"""Headless Debian chromium driven by Playwright (no browser download), with screenshots
kept as test artefacts under var/test-artefacts/ (or $HOTLINE_TEST_ARTEFACTS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("HOTLINE_TEST_ARTEFACTS", ROOT / "var" / "test-artefacts"))
# Without these, chromium reaches for Google's services, which this network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = require_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def phone_page(browser: Browser) -> Page:
    """A page the size of a phone's screen, in Chinese."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", device_scale_factor=1
    )
    return context.new_page()


def screenshot(page: Page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
