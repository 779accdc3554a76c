"""What the browser tests share: Debian's Chromium driven by Playwright, one per test module, and
screenshots at 1280x800 into ``build/screenshots/`` (``SCREENSHOT_DIR`` overrides)."""
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from config import BASE_DIR

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", BASE_DIR / "build" / "screenshots"))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("the browser tests need Debian's Chromium: apt-get install chromium")
    return path


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Keep a screenshot of the page as it is now (the whole page with ``full_page``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
