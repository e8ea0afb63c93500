"""The same business id with different content is a conflict (409 naming the id), not a silent
duplicate; the same content again stays a harmless 200 duplicate. Neither changes what was
stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.helpers import SKU, make_settings, movement, order, running

pytestmark = pytest.mark.anyio


async def test_a_reused_movement_id_is_a_409_and_changes_nothing(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        assert (await api.post("/v1/movements", movement("m1", quantity=1))).status_code == 202
        again = await api.post("/v1/movements", movement("m1", quantity=1))
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        other = await api.post("/v1/movements", movement("m1", quantity=999))
        assert other.status_code == 409
        assert other.headers["content-type"] == "application/problem+json"
        assert other.json()["field"] == "movement_id" and "'m1'" in other.json()["detail"]
        await api.drain()
        inv = (await api.get(f"/v1/inventory/{SKU}", as_="wms")).json()
        assert inv["wms_on_hand"] == inv["erp_on_hand"] == 1  # the first one, once
        status = await api.status()
        assert status["counters"]["conflicting_publishes"] == 1


async def test_a_conflicting_item_in_a_batch_is_rejected_alone(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        await api.post("/v1/movements", movement("m1", quantity=1))
        r = await api.post("/v1/movements:batch", {"movements": [
            movement("m1", quantity=1), movement("m1b", quantity=2), movement("m1", quantity=7)]})
        assert r.status_code == 202
        doc = r.json()
        assert (doc["accepted"], doc["duplicates"], doc["rejected"]) == (1, 1, 1)
        items = doc["items"]
        assert [i["status"] for i in items] == ["duplicate", "accepted", "rejected"]
        assert items[2]["problem"]["status"] == 409
        assert items[2]["problem"]["field"] == "movements[2].movement_id"
        await api.drain()
        inv = (await api.get(f"/v1/inventory/{SKU}", as_="wms")).json()
        assert inv["wms_on_hand"] == 3


async def test_a_reused_order_id_with_other_lines_is_a_409(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        assert (await api.post("/v1/orders", order("o1"), as_="shop")).status_code == 202
        assert (await api.post("/v1/orders", order("o1"), as_="shop")).status_code == 200
        r = await api.post("/v1/orders", order("o1", quantity=9), as_="shop")
        assert r.status_code == 409 and r.json()["field"] == "order_id"
