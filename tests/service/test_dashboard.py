"""The dashboard without a browser: login and its cookie, viewer against admin, the
cross-site guards of requeue, the event stream, and snapshots that follow the traffic.

The service runs under a real uvicorn on a loopback port inside the test's event loop (an
event stream needs a real socket: httpx's ASGI transport collects a whole response before
returning it); the ERP and WMS twins run in process behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from integration_core.service import Settings, create_app
from integration_core.service.dashboard import OrderLatency
from sim.live import create_twins_app
from tests.service.helpers import KEYS, PARTNER_KEY, movement, order, shipment, twins_db
from tests.service.helpers import make_settings as base_settings

pytestmark = pytest.mark.anyio


def make_settings(db: Path, **overrides: Any) -> Settings:
    return base_settings(db, **overrides)


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn on 127.0.0.1 (a free port), until exit; yields its base URL."""
    twins = create_twins_app(twins_db(settings), PARTNER_KEY)
    app = create_app(settings, partner_transport=httpx.ASGITransport(app=twins))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn not started in 10 s"
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        twins.state.close()


async def login(http: httpx.AsyncClient, system: str) -> dict[str, Any]:
    r = await http.post("/v1/dashboard/session", json={"key": KEYS[system]})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def next_snapshots(http: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    """The first `n` snapshots of a fresh event stream (bounded by a timeout)."""
    out: list[dict[str, Any]] = []
    event = None
    async with asyncio.timeout(15), http.stream("GET", "/v1/dashboard/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "snapshot":
                out.append(json.loads(line[6:]))
                if len(out) == n:
                    return out
    raise AssertionError("stream ended early")


def problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc: dict[str, Any] = r.json()
    if field is not None:
        assert doc["field"] == field, doc
    return doc


# -- pure: the latency window -----------------------------------------------------------------


def test_order_latency_counts_waiting_orders_censored_at_their_age() -> None:
    lat = OrderLatency(window_s=60)
    for i in range(10):
        lat.placed(f"O-{i}", 100.0)
    for i in range(9):
        lat.release_answered(f"O-{i}", 101.0, accepted=True)  # 1 s each
    s = lat.summary(now=130.0)
    assert s["p50_s"] == pytest.approx(1.0) and s["released"] == 9 and s["waiting"] == 1
    assert s["p95_s"] > 1.0  # the one still waiting (30 s) pulls the tail up
    assert s["oldest_waiting_s"] == pytest.approx(30.0)
    s = lat.summary(now=200.0)  # the cohort left the window; the waiting order is still shown
    assert s["p50_s"] is None and s["released"] == 0 and s["waiting"] == 1
    lat.release_answered("O-9", 201.0, accepted=False)
    assert lat.summary(now=202.0)["refused"] == 1 and lat.summary(now=202.0)["waiting"] == 0


def test_order_latency_memory_is_bounded() -> None:
    lat = OrderLatency(window_s=60, max_open=3)
    for i in range(5):
        lat.placed(f"O-{i}", float(i))
    assert list(lat.open) == ["O-2", "O-3", "O-4"] and lat.forgotten == 2


# -- access -----------------------------------------------------------------------------------


async def test_login_sets_an_httponly_strict_cookie_and_never_echoes_the_key(
    tmp_path: Path,
) -> None:
    async with (
        served(make_settings(tmp_path / "t.db")) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        page = await http.get("/dashboard")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        for asset in (
            "/static/dashboard/dashboard.js",
            "/static/vendor/uplot/uPlot.iife.min.js",
            "/static/vendor/uplot/LICENSE",
        ):
            assert (await http.get(asset)).status_code == 200, asset

        r = await http.post("/v1/dashboard/session", json={"key": KEYS["viewer"]})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
        assert {"httponly", "samesite", "path"} <= attrs and "samesite=strict" in cookie.lower()
        assert KEYS["viewer"] not in cookie and KEYS["viewer"] not in r.text
        assert r.json()["system"] == "viewer" and r.json()["can_requeue"] is False
        assert (await http.get("/v1/dashboard/session")).json()["system"] == "viewer"

        # the stream and the snapshot are authorised by that cookie alone
        assert (await http.get("/v1/dashboard/snapshot")).json()["ready"] is True

        assert (await http.delete("/v1/dashboard/session")).status_code == 204
        problem(await http.get("/v1/dashboard/session"), 401)
        problem(await http.get("/v1/dashboard/snapshot"), 401)


async def test_bad_logins_are_problems_naming_the_key(tmp_path: Path) -> None:
    async with (
        served(make_settings(tmp_path / "t.db")) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        wrong = problem(
            await http.post("/v1/dashboard/session", json={"key": "x" * 20}), 401, "key"
        )
        assert "x" * 20 not in json.dumps(wrong)
        problem(await http.post("/v1/dashboard/session", json={}), 422, "key")
        problem(await http.post("/v1/dashboard/session", json={"key": ""}), 422, "key")
        problem(
            await http.post("/v1/dashboard/session", json={"key": KEYS["wms"]}), 403, "key"
        )  # a system key without dashboard:read
        problem(
            await http.post(
                "/v1/dashboard/session", content=b"{", headers={"Content-Type": "application/json"}
            ),
            422,
        )
        problem(
            await http.post(
                "/v1/dashboard/session",
                json={"key": KEYS["viewer"]},
                headers={"Origin": "http://evil.example"},
            ),
            403,
        )
        assert (
            "set-cookie"
            not in (await http.post("/v1/dashboard/session", json={"key": "y" * 20})).headers
        )


async def test_requeue_needs_an_admin_session_same_origin_and_the_csrf_token(
    tmp_path: Path,
) -> None:
    async with (
        served(make_settings(tmp_path / "t.db")) as base,
        httpx.AsyncClient(base_url=base) as viewer,
        httpx.AsyncClient(base_url=base) as admin,
        httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEYS["admin"]}) as api,
    ):
        # a dead letter, deterministically: a shipment for an order never placed
        assert (
            await api.post("/v1/shipments/confirmations", json=shipment("S-1", "O-9"))
        ).status_code == 202
        dl = await wait_dead_letter(api)
        path = f"/v1/dashboard/dead-letters/{dl}/requeue"

        problem(await viewer.post(path), 401)  # no session
        v = await login(viewer, "viewer")
        problem(await viewer.post(path, headers={"X-CSRF-Token": v["csrf"]}), 403)
        a = await login(admin, "admin")
        assert a["can_requeue"] is True
        problem(await admin.post(path), 403, "X-CSRF-Token")
        problem(await admin.post(path, headers={"X-CSRF-Token": "forged"}), 403, "X-CSRF-Token")
        problem(
            await admin.post(
                path, headers={"X-CSRF-Token": a["csrf"], "Sec-Fetch-Site": "cross-site"}
            ),
            403,
        )
        problem(
            await admin.post(
                path, headers={"X-CSRF-Token": a["csrf"], "Origin": "http://evil.example"}
            ),
            403,
        )
        problem(
            await admin.post(
                "/v1/dashboard/dead-letters/orders/none/requeue",
                headers={"X-CSRF-Token": a["csrf"]},
            ),
            404,
            "dead_letter_id",
        )
        assert (await api.get("/v1/dead-letters")).json()["total"] == 1  # nothing requeued yet

        r = await admin.post(
            path,
            headers={"X-CSRF-Token": a["csrf"], "Origin": base, "Sec-Fetch-Site": "same-origin"},
        )
        assert r.status_code == 202 and r.json() == {"id": dl, "status": "requeued"}
        # redelivered; the order is still unknown, so it is dead again under a new failure
        await wait_dead_letter(api)


async def wait_dead_letter(api: httpx.AsyncClient) -> str:
    deadline = time.monotonic() + 5
    while True:
        doc = (await api.get("/v1/dead-letters")).json()
        if doc["total"]:
            dl: str = doc["items"][0]["id"]
            return dl
        assert time.monotonic() < deadline, "no dead letter within 5 s"
        await asyncio.sleep(0.05)


async def test_api_keys_work_for_scripts_and_scopes_hold(tmp_path: Path) -> None:
    async with (
        served(make_settings(tmp_path / "t.db")) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        ok = await http.get("/v1/dashboard/snapshot", headers={"X-API-Key": KEYS["viewer"]})
        assert ok.status_code == 200 and ok.json()["ready"] is True
        problem(await http.get("/v1/dashboard/snapshot", headers={"X-API-Key": KEYS["shop"]}), 403)
        # the viewer key reads the dashboard only: the API's own routes refuse it
        problem(await http.get("/v1/dead-letters", headers={"X-API-Key": KEYS["viewer"]}), 403)
        problem(await http.get("/v1/status", headers={"X-API-Key": KEYS["viewer"]}), 403)


# -- the stream -------------------------------------------------------------------------------


async def test_stream_snapshots_follow_the_movements_and_are_shared(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db")
    async with (
        served(settings) as base,
        httpx.AsyncClient(base_url=base) as http,
        httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEYS["wms"]}) as wms,
    ):
        await login(http, "viewer")
        (first,) = await next_snapshots(http, 1)
        assert first["ready"] and first["inventory"]["booked_while_watched"] == 0
        assert first["partners"]["erp"]["state"] == "up"
        assert set(first["consumers"]) >= {"erp", "wms", "orders"}

        r = await wms.post(
            "/v1/movements:batch",
            json={"movements": [movement(f"M-{i}", quantity=2) for i in range(40)]},
        )
        assert r.status_code in (200, 202), r.text
        snaps = await wait_for(http, lambda s: s["inventory"]["booked_while_watched"] >= 40)
        assert any(s["inventory"]["movements_in_per_s"] > 0 for s in snaps)
        assert any(s["inventory"]["movements_out_per_s"] > 0 for s in snaps)

        # two streams at once get the same snapshots: one computation per tick
        a, b = await asyncio.gather(next_snapshots(http, 2), next_snapshots(http, 2))
        assert {s["seq"] for s in a} & {s["seq"] for s in b}
        for x in a:
            for y in b:
                if x["seq"] == y["seq"]:
                    assert x == y


async def test_erp_outage_shows_as_down_with_a_growing_backlog_and_order_latency(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "t.db", retry_max_attempts=100, retry_max_delay_s=0.5)
    async with (
        served(settings) as base,
        httpx.AsyncClient(base_url=base) as http,
        httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEYS["admin"]}) as admin,
    ):
        await login(http, "viewer")
        assert (await admin.put("/v1/admin/faults/erp", json={"mode": "down"})).status_code == 200
        for i in range(5):
            r = await admin.post(
                "/v1/movements", json=movement(f"D-{i}"), headers={"X-API-Key": KEYS["wms"]}
            )
            assert r.status_code in (200, 202), r.text
        r = await admin.post("/v1/orders", json=order("O-1"), headers={"X-API-Key": KEYS["shop"]})
        assert r.status_code in (200, 202), r.text
        snaps = await wait_for(
            http,
            lambda s: (
                s["partners"]["erp"]["state"] == "down"
                and s["inventory"]["erp_backlog"] >= 5
                and s["inventory"]["sync_lag_s"] > 0
                and s["orders"]["waiting"] >= 1
            ),
        )
        last = snaps[-1]
        assert last["partners"]["wms"]["state"] == "up"
        assert last["consumers"]["erp"]["backlog"] >= 5
        assert last["orders"]["p95_s"] is not None  # censored at its age, not left out

        assert (await admin.put("/v1/admin/faults/erp", json={"mode": "up"})).status_code == 200
        await wait_for(
            http,
            lambda s: s["partners"]["erp"]["state"] == "up" and s["inventory"]["erp_backlog"] == 0,
            timeout_s=20,
        )


async def wait_for(
    http: httpx.AsyncClient, ok: Any, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Snapshots from one stream until `ok(snapshot)` (bounded)."""
    seen: list[dict[str, Any]] = []
    event = None
    try:
        async with asyncio.timeout(timeout_s), http.stream("GET", "/v1/dashboard/events") as r:
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "snapshot":
                    seen.append(json.loads(line[6:]))
                    if ok(seen[-1]):
                        return seen
    except TimeoutError:
        pass
    raise AssertionError(
        f"condition not met in {timeout_s} s; last: {json.dumps(seen[-1] if seen else None)[:2000]}"
    )
