"""Headless Chromium through Selenium (Debian's chromium + chromium-driver), and screenshot artifacts."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("BTQ_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "btq-test-artifacts")
"""Where the browser tests save screenshots (BTQ_TEST_ARTIFACTS, default a directory under the temp dir)."""


def _binaries() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(width: int = 1280, height: int = 1100) -> Iterator[object]:
    """Yield a headless Chromium WebDriver; skip locally (fail in CI) when it is not installed."""
    found = _binaries()
    if found is None:
        message = "chromium and chromedriver are needed: scripts/install-browser.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: object, name: str) -> Path:
    """Save a full-window screenshot as a test artifact and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


def screenshot_at(driver: object, name: str, selector: str) -> Path:
    """Scroll `selector` to the top of the window, then save a screenshot as `screenshot` does."""
    driver.execute_script("document.querySelector(arguments[0]).scrollIntoView()", selector)  # type: ignore[attr-defined]
    return screenshot(driver, name)
