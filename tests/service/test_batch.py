"""POST /v1/movements:batch: per-item results, one transaction for the valid items."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration_core.service.schemas import BatchResult
from tests.service.helpers import make_settings, movement, running

pytestmark = pytest.mark.anyio


async def test_partial_failure_names_each_bad_item(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        batch = {"movements": [
            movement("m0", quantity=5),
            movement("m1", sku="NOPE"),
            movement("m2", kind="pick", quantity=2),
            "not an object",
            movement("m4", quantity="0.5"),
        ]}
        r = await api.post("/v1/movements:batch", batch)
        assert r.status_code == 202, r.text
        doc = r.json()
        assert BatchResult.model_validate(doc).model_dump(mode="json") == doc  # as documented
        assert (doc["accepted"], doc["duplicates"], doc["rejected"]) == (2, 0, 3)
        assert [i["status"] for i in doc["items"]] == ["accepted", "rejected", "accepted",
                                                       "rejected", "rejected"]
        fields = {i["index"]: i["problem"]["field"] for i in doc["items"] if i["problem"]}
        assert fields == {1: "movements[1].sku", 3: "movements[3]",
                          4: "movements[4].quantity_base"}
        assert doc["items"][1]["movement_id"] == "m1"
        await api.drain()
        assert (await api.get("/v1/inventory/SKU-00001")).json()["erp_on_hand"] == 3
        assert await api.applied(["m0", "m1", "m2", "m4"]) == {"m0": 1, "m1": 0, "m2": 1,
                                                               "m4": 0}


async def test_duplicates_within_and_across_batches_apply_once(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        r = await api.post("/v1/movements:batch",
                           {"movements": [movement("a"), movement("b"), movement("a")]})
        assert [i["status"] for i in r.json()["items"]] == ["accepted", "accepted",
                                                            "duplicate"]
        r = await api.post("/v1/movements:batch", {"movements": [movement("b"), movement("c")]})
        assert [i["status"] for i in r.json()["items"]] == ["duplicate", "accepted"]
        assert (await api.post("/v1/movements", movement("c"))).status_code == 200
        await api.drain()
        assert await api.applied(["a", "b", "c"]) == {"a": 1, "b": 1, "c": 1}
        assert (await api.get("/v1/inventory/SKU-00001")).json()["wms_on_hand"] == 3


async def test_a_batch_with_no_valid_item_is_a_422(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        r = await api.post("/v1/movements:batch", {"movements": [movement("x", sku="NOPE")]})
        assert r.status_code == 422
        assert r.json()["field"] == "movements[0].sku"
        assert (await api.post("/v1/movements:batch", {"movements": []})).status_code == 422
        assert (await api.post("/v1/movements:batch", {"items": []})).json()["field"] \
            == "movements"
        assert (await api.status())["counters"]["published"] == 0


async def test_the_documented_maximum(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db", batch_max=1000)) as api:
        full = {"movements": [movement(f"m{i}", location=f"L{i % 7}") for i in range(1000)]}
        r = await api.post("/v1/movements:batch", full)
        assert r.status_code == 202 and r.json()["accepted"] == 1000
        over = {"movements": [movement(f"n{i}") for i in range(1001)]}
        r = await api.post("/v1/movements:batch", over)
        assert r.status_code == 422 and "at most 1000" in r.json()["detail"]
        spec = (await api.get("/openapi.json")).json()
        assert spec["components"]["schemas"]["MovementBatch"]["properties"]["movements"][
            "maxItems"] == 1000
        await api.drain()
        assert (await api.get("/v1/inventory/SKU-00001")).json()["erp_on_hand"] == 1000
