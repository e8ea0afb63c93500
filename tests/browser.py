"""Headless Chromium for the tests that open pages (the dashboard, the twin's report.html):
Debian's `chromium` and `chromium-driver` driven by Selenium, started with a fresh profile and
nothing that reaches for the network (this machine has none beyond loopback).

Without Chromium, its driver or Selenium a test that needs them skips and says why; with
INTEROP_REQUIRE_BROWSER=1 (CI) it fails instead. `make browser` installs the packages.

A test module makes its own fixture of `chromium(...)`, so that nothing here is a fixture
imported by name (which linters read as an unused import shadowed by an argument):

    @pytest.fixture
    def browser(tmp_path, monkeypatch):
        with chromium(tmp_path, monkeypatch) as driver:
            yield driver
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# This machine has no network beyond loopback: no background fetches, no update checks.
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def missing() -> str | None:
    """Why no browser test can run here, or None when one can."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return (
            f"no {CHROMIUM} or {CHROMEDRIVER}: `make browser` installs Debian's chromium "
            "and chromium-driver"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra has it)"
    return None


def need_browser() -> None:
    """Skip the calling test without a browser, saying why; fail instead under
    INTEROP_REQUIRE_BROWSER=1, so that CI cannot pass by skipping."""
    why = missing()
    if why is None:
        return
    if os.environ.get("INTEROP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"INTEROP_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@contextmanager
def chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: tuple[int, int] = (1400, 2200)
) -> Iterator[Any]:
    """A Selenium driver of headless Chromium with a fresh profile in tmp_path, keeping the
    console's SEVERE messages for `severe_errors`; quit on exit."""
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: download nothing
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """`check()`'s first truthy value within the time, else an AssertionError naming `what`
    and the last value seen (an exception counts as not yet: an element still missing)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # an element not there yet, a stale row: look again
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r})")


def severe_errors(driver: Any, expected: Callable[[str], bool] = lambda _m: False
                  ) -> list[dict[str, Any]]:
    """The console's SEVERE entries since the last call, less those `expected` accepts."""
    return [e for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not expected(e["message"])]


def keep_screenshot(driver: Any, tmp_path: Path, docs_image: Path) -> Path:
    """The window as a PNG in tmp_path, copied to `docs_image` (under docs/img) when
    INTEROP_SCREENSHOTS=1: the README's pictures are made by the tests that check them."""
    shot = tmp_path / docs_image.name
    driver.save_screenshot(str(shot))
    if os.environ.get("INTEROP_SCREENSHOTS") == "1":
        docs_image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, docs_image)
    return shot
