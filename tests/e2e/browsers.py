"""What the browser tests share: Debian's Chromium driven by Playwright, one per test module, and
screenshots at 1280x800 into ``build/screenshots/`` (``SCREENSHOT_DIR`` overrides)."""
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Error, Page, sync_playwright

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


CAPTURE_TRIES = 3
NEXT_FRAME = "() => new Promise(resolve => requestAnimationFrame(() => resolve()))"


def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Keep a screenshot of the page as it is now (the whole page with ``full_page``).

    A busy machine's headless Chromium sometimes has no frame to give ("Unable to capture
    screenshot", a compositor's refusal, not the page's fault): the capture is tried again after the
    page's next frame, three times in all. Any other error, and the third refusal, fail the test."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, CAPTURE_TRIES + 1):
        try:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
            return
        except Error as error:
            if "Unable to capture screenshot" not in error.message or attempt == CAPTURE_TRIES:
                raise
            page.evaluate(NEXT_FRAME)
