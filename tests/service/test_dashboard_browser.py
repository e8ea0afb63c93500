"""The dashboard in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium, against `twin serve` and `twin twins` started as
processes on loopback ports.

One walk through: log in with the admin key (the cookie is HttpOnly and SameSite=Strict, the
key in no URL), watch the numbers move as movements arrive, switch the ERP twin down and see
the ERP shown down and its backlog grow, requeue a dead letter (a shipment confirmation for
an order not placed yet: dead at once, deterministic), and save a screenshot of the outage
(always in tmp_path; also to docs/img/dashboard-outage.png with INTEROP_SCREENSHOTS=1).

Without Chromium, its driver or Selenium the test skips and says why; with
INTEROP_REQUIRE_BROWSER=1 (CI) it fails instead (tests/browser.py, shared with the twin's
report page). `make browser` installs the packages.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration_core.service import SYSTEMS
from tests.browser import chromium, keep_screenshot, need_browser, severe_errors, wait_until
from tests.service.helpers import KEYS, PARTNER_KEY, movement, order, shipment
from tests.service.test_sigkill import REPO, free_port, start_twins, wait_ready

SCREENSHOT = REPO / "docs" / "img" / "dashboard-outage.png"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)  # an open event stream may hold uvicorn's graceful stop: bounded
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    """`twin twins` and `twin serve` on free loopback ports; yields the service's URL."""
    need_browser()
    twins_port, port = free_port(), free_port()
    twins_log, log = tmp_path / "twins.log", tmp_path / "serve.log"
    with open(twins_log, "wb") as tl, open(log, "wb") as sl:
        twins = start_twins(tmp_path / "twins.db", twins_port, tl)
        env = {
            **os.environ,
            "TWIN_PARTNER_KEY": PARTNER_KEY,
            "TWIN_INTAKE_WORKERS": "0",
            "TWIN_CATALOG_SKUS": "50",
            "TWIN_RECONCILE_INTERVAL_S": "2",
            **{f"TWIN_API_KEY_{s.upper()}": KEYS[s] for s in SYSTEMS},
        }
        twins_url = f"http://127.0.0.1:{twins_port}"
        serve = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from sim.cli import app; app()",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "core.db"),
                "--log-level",
                "warning",
                "--erp-url",
                f"{twins_url}/erp",
                "--wms-url",
                f"{twins_url}/wms",
            ],
            env=env,
            cwd=REPO,
            stdout=sl,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(wait_ready(twins_url, twins, twins_log, probe="/healthz"))
            asyncio.run(wait_ready(base, serve, log))
            yield base
        finally:
            _stop(serve)
            _stop(twins)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with chromium(tmp_path, monkeypatch) as driver:
        yield driver


def number(text: str) -> float:
    return float(text.replace(",", "").split()[0]) if text.strip() not in ("", "–") else 0.0


def seconds(text: str) -> float:
    """The page's durations ("850 ms", "2.3 s", "1.5 min") back in seconds."""
    if text.strip() in ("", "–"):
        return 0.0
    value, unit = text.split()
    return float(value) * {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}[unit]


@pytest.fixture
def api(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=10) as client:
        yield client


def test_dashboard_live_outage_and_requeue(
    service: str, api: httpx.Client, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    def post(path: str, body: Any, as_: str) -> None:
        r = api.post(path, json=body, headers={"X-API-Key": KEYS[as_]})
        assert r.status_code in (200, 202), r.text

    def text(element_id: str) -> str:
        value: str = browser.find_element(By.ID, element_id).text
        return value

    def cell(table: str, attr: str, key: str, col: int) -> str:
        row = browser.find_element(By.CSS_SELECTOR, f"#{table} tr[data-{attr}='{key}']")
        value: str = row.find_elements(By.TAG_NAME, "td")[col].text
        return value

    def status() -> dict[str, Any]:
        doc: dict[str, Any] = api.get("/v1/status", headers={"X-API-Key": KEYS["admin"]}).json()
        return doc

    # -- log in: the key goes into the form once, the session lives in an HttpOnly cookie ----
    browser.get(f"{service}/dashboard")
    wait_until("the login form", lambda: browser.find_element(By.ID, "key").is_displayed())
    browser.find_element(By.ID, "key").send_keys(KEYS["admin"])
    browser.find_element(By.ID, "login-submit").click()
    wait_until("the board", lambda: browser.find_element(By.ID, "board").is_displayed())
    wait_until("the stream", lambda: text("conn") == "live")
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # script cannot read it
    assert KEYS["admin"] not in browser.current_url and KEYS["admin"] not in cookie["value"]
    assert browser.find_element(By.ID, "key").get_attribute("value") == ""
    wait_until("ERP shown up", lambda: cell("partners", "partner", "erp", 1) == "UP")

    # -- numbers move as movements arrive ------------------------------------------------------
    assert number(text("applied")) == 0
    post("/v1/movements", movement("stock-1", quantity=100), "wms")
    for n in range(5):
        post(
            "/v1/movements:batch",
            {"movements": [movement(f"M-{n}-{i}", quantity=1) for i in range(20)]},
            "wms",
        )
        time.sleep(0.3)
    wait_until("movements booked in the ERP", lambda: number(text("applied")) >= 101)
    batches = iter(range(1000))

    def rates_shown() -> bool:  # keep movements coming until a tick has seen them both ways
        post(
            "/v1/movements:batch",
            {"movements": [movement(f"R-{next(batches)}-{i}") for i in range(20)]},
            "wms",
        )
        return number(text("mov-in")) > 0 and number(text("mov-out")) > 0

    wait_until("movements/s in and out", rates_shown)
    before = number(text("applied"))
    wait_until("the booked count growing", lambda: number(text("applied")) > before)

    # -- a dead letter, and its order placed so that a requeue can succeed -------------------
    post("/v1/shipments/confirmations", shipment("S-1", "O-9"), "wms")
    wait_until(
        "the dead letter listed",
        lambda: browser.find_elements(By.CSS_SELECTOR, "#dead-letters button.requeue"),
    )
    assert "NotFound" in browser.find_element(By.CSS_SELECTOR, "#dead-letters td.cause").text
    post("/v1/orders", order("O-9"), "shop")
    wait_until("order O-9 released", lambda: status()["drained"])
    wait_until("order latency shown", lambda: text("orders-p50") != "–")
    assert number(text("orders-released")) >= 1

    # -- the ERP goes down: shown down, its backlog grows --------------------------------------
    r = api.put("/v1/admin/faults/erp", json={"mode": "down"}, headers={"X-API-Key": KEYS["admin"]})
    assert r.status_code == 200, r.text
    for n in range(3):
        post(
            "/v1/movements:batch",
            {"movements": [movement(f"D-{n}-{i}", quantity=1) for i in range(10)]},
            "wms",
        )
    wait_until("ERP shown down", lambda: cell("partners", "partner", "erp", 1) == "DOWN")
    wait_until(
        "the ERP backlog grown", lambda: number(cell("consumers", "consumer", "erp", 1)) >= 30
    )
    wait_until(
        "the outage banner",
        lambda: (
            browser.find_element(By.ID, "outage").is_displayed() and "ERP down" in text("outage")
        ),
    )
    assert cell("partners", "partner", "wms", 1) == "UP"
    first_lag = wait_until("a sync lag", lambda: seconds(text("sync-lag")))
    wait_until("the sync lag rising", lambda: seconds(text("sync-lag")) > first_lag)
    assert number(cell("consumers", "consumer", "erp", 1)) >= 30  # still there: not lost
    keep_screenshot(browser, tmp_path, SCREENSHOT)

    # -- requeue the dead letter from the page ------------------------------------------------
    browser.find_element(By.CSS_SELECTOR, "#dead-letters button.requeue").click()
    wait_until("requeued", lambda: "Requeued" in text("requeue-result"))
    wait_until("the dead letter gone", lambda: text("dead-total") == "0")
    time.sleep(1.0)
    dead = api.get("/v1/dead-letters", headers={"X-API-Key": KEYS["admin"]}).json()
    assert dead["total"] == 0, dead  # handled this time, not dead again

    # -- the ERP back: the backlog drains ----------------------------------------------------
    r = api.put("/v1/admin/faults/erp", json={"mode": "up"}, headers={"X-API-Key": KEYS["admin"]})
    assert r.status_code == 200
    wait_until("ERP shown up again", lambda: cell("partners", "partner", "erp", 1) == "UP")
    wait_until(
        "the ERP backlog drained",
        lambda: number(cell("consumers", "consumer", "erp", 1)) == 0,
        timeout_s=60,
    )
    # The page's first question, "am I logged in?", is answered 401 before the login: the one
    # error expected. Anything else (a script error, a missing file) fails the test.
    errors = severe_errors(browser, lambda m: "/v1/dashboard/session" in m and "401" in m)
    assert not errors, errors
