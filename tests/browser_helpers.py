"""Headless Chromium for the browser tests: the system binary driven by Python playwright, never a download.

    pytestmark = needs_browser
    browser = browser_fixture()      # a module-scoped fixture named `browser`
"""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

needs_browser = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no chromium at {CHROMIUM}")


def browser_fixture():
    """A module-scoped fixture yielding a launched Chromium (skips when playwright is missing)."""

    @pytest.fixture(scope="module")
    def browser():
        sync_api = pytest.importorskip("playwright.sync_api")
        with sync_api.sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                yield b
            finally:
                b.close()

    return browser
