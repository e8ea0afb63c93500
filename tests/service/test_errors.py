"""Every error class the API answers, each as application/problem+json naming the field."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.helpers import KEYS, make_settings, movement, order, running

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"


def problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = r.json()
    assert doc["status"] == status
    assert doc["type"].startswith("urn:interop-twin:problem:")
    assert doc["title"] and doc["detail"]
    assert doc["instance"] == r.request.url.path
    if field is not None:
        assert doc["field"] == field, doc
        assert doc["errors"][0]["field"] == field
    return doc


async def test_401_without_a_key_or_with_an_unknown_one(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        r = await api.http.post("/v1/movements", json=movement("m1"))
        doc = problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "no API key" in doc["detail"]
        r = await api.http.post("/v1/movements", json=movement("m1"),
                                headers={"X-API-Key": "not-a-key-0123456789abcdef"})
        problem(r, 401)
        r = await api.http.get("/v1/orders/O-1", headers={"Authorization": "Basic abc"})
        problem(r, 401)
        # Bearer works as well as X-API-Key.
        r = await api.http.post("/v1/movements", json=movement("m1"),
                                headers={"Authorization": f"Bearer {KEYS['wms']}"})
        assert r.status_code == 202
        assert (await api.status())["counters"]["published"] == 1


async def test_403_outside_the_keys_scopes(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        doc = problem(await api.post("/v1/orders", order("O-1"), as_="wms"), 403)
        assert "wms" in doc["detail"] and "orders:write" in doc["detail"]
        problem(await api.post("/v1/movements", movement("m1"), as_="shop"), 403)
        problem(await api.post("/v1/carrier/milestones", {}, as_="wms"), 403)
        problem(await api.get("/v1/dead-letters", as_="wms"), 403)
        problem(await api.post("/v1/reconcile", as_="erp"), 403)
        problem(await api.put("/v1/admin/faults/erp", {"mode": "down"}, as_="erp"), 403)
        # The WMS reads inventory; the admin may do everything.
        assert (await api.get("/v1/inventory/SKU-00001", as_="wms")).status_code == 200
        assert (await api.post("/v1/orders", order("O-1"), as_="admin")).status_code == 202


async def test_404s(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        doc = problem(await api.get("/v1/orders/O-404", as_="shop"), 404, "order_id")
        # The field is named beside the message, not repeated in front of it.
        assert "'O-404'" in doc["detail"] and not doc["detail"].startswith("order_id")
        assert doc["errors"] == [{"field": "order_id", "message": doc["detail"]}]
        problem(await api.get("/v1/inventory/NO-SUCH-SKU", as_="wms"), 404, "sku")
        problem(await api.post("/v1/dead-letters/erp/99/requeue", as_="admin"), 404,
                "dead_letter_id")
        problem(await api.get("/v1/no-such-route"), 404)
        problem(await api.http.delete("/v1/movements"), 405)


async def test_409_idempotency_key_with_another_body(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        h = {"Idempotency-Key": "k-1"}
        assert (await api.post("/v1/movements", movement("m1"), headers=h)).status_code == 202
        doc = problem(await api.post("/v1/movements", movement("m2"), headers=h), 409,
                      "Idempotency-Key")
        assert "different request" in doc["detail"]


@pytest.mark.parametrize(("body", "field", "words"), [
    (movement("m1", sku="NOPE"), "sku", "unknown SKU 'NOPE'"),
    (movement("m1", unit="PALLET"), "unit", "unknown unit 'PALLET'"),
    (movement("m1", kind="teleport"), "kind", "Input should be"),
    (movement("m1", quantity=-3), "quantity", "must be positive"),
    (movement("m1", quantity="0.5"), "quantity_base", "not a whole number"),
    ({k: v for k, v in movement("m1").items() if k != "location"}, "location", "required"),
    (movement("m1", colour="red"), "colour", "Extra inputs"),
    ([1, 2], "body", "expected a JSON object"),
])
async def test_422_names_the_field(tmp_path: Path, body: Any, field: str, words: str) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        doc = problem(await api.post("/v1/movements", body), 422, field)
        assert words in doc["detail"], doc["detail"]
        assert (await api.status())["counters"]["published"] == 0


async def test_422_other_sources(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db", batch_max=3)) as api:
        r = await api.http.post("/v1/movements", content=b"{not json",
                                headers={"X-API-Key": KEYS["wms"],
                                         "content-type": "application/json"})
        problem(r, 422, "body")
        r = await api.http.post("/v1/dead-letters/erp/1/requeue", content=b"\xff{",
                                headers={"X-API-Key": KEYS["admin"],
                                         "content-type": "application/json"})
        problem(r, 422, "body")
        bad_line = order("O-1", sku="NOPE")
        problem(await api.post("/v1/orders", bad_line, as_="shop"), 422, "lines[0].sku")
        problem(await api.post("/v1/movements:batch",
                               {"movements": [movement(f"m{i}") for i in range(4)]}), 422,
                "movements")
        problem(await api.post("/v1/movements", movement("m1"),
                               headers={"Idempotency-Key": "x" * 201}), 422, "Idempotency-Key")
        problem(await api.get("/v1/dead-letters", limit=0), 422, "limit")
        problem(await api.put("/v1/admin/faults/erp", {"mode": "sideways"}), 422, "mode")


async def test_429_with_retry_after_per_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", rates={"wms": (0.5, 2)})
    async with running(settings) as api:
        codes = [(await api.post("/v1/movements", movement(f"m{i}"))).status_code
                 for i in range(3)]
        assert codes == [202, 202, 429]
        r = await api.post("/v1/movements", movement("m9"))
        doc = problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1 and "wms" in doc["detail"]
        # Another system's key has its own bucket.
        assert (await api.post("/v1/orders", order("O-1"), as_="shop")).status_code == 202
        metrics = (await api.http.get("/metrics")).text
        assert 'twin_rate_limited_total{system="wms"} 2' in metrics


async def test_keys_never_appear_in_responses_or_logs(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(make_settings(tmp_path / "t.db")) as api:
        seen: list[httpx.Response] = [
            await api.post("/v1/movements", movement("m1")),
            await api.post("/v1/orders", order("O-1"), as_="wms"),
            await api.post("/v1/movements", movement("m1", sku="NOPE")),
            await api.get("/v1/status"),
            await api.http.get("/metrics"),
            await api.http.get("/openapi.json"),
        ]
    for r in seen:
        text = r.text + str(r.headers)
        for key in KEYS.values():
            assert key not in text
    for key in KEYS.values():
        assert key not in caplog.text
    assert KEYS["admin"] not in repr(make_settings(tmp_path / "x.db"))
