"""Idempotency-Key: replay of the first response, 409 on another body, durable across a
restart, scoped per calling system, and only successes recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.helpers import make_settings, movement, order, running

pytestmark = pytest.mark.anyio


async def test_same_key_same_body_replays_the_first_response(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        h = {"Idempotency-Key": "order-O-1"}
        first = await api.post("/v1/orders", order("O-1"), as_="shop", headers=h)
        again = await api.post("/v1/orders", order("O-1"), as_="shop", headers=h)
        assert first.status_code == again.status_code == 202
        assert again.content == first.content  # not "duplicate": the first answer, verbatim
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        status = await api.status()
        assert status["counters"]["published"] == 1
        assert status["counters"]["duplicate_publishes"] == 0  # never reached the bus
        assert "twin_idempotent_replays_total 1" in (await api.http.get("/metrics")).text


async def test_same_key_other_body_is_a_conflict_and_changes_nothing(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        h = {"Idempotency-Key": "k"}
        assert (await api.post("/v1/movements", movement("m1", quantity=1),
                               headers=h)).status_code == 202
        r = await api.post("/v1/movements", movement("m1", quantity=2), headers=h)
        assert r.status_code == 409
        # The same body on another route is another request too.
        r = await api.post("/v1/movements:batch", {"movements": [movement("m1", quantity=1)]},
                           headers=h)
        assert r.status_code == 409
        await api.drain()
        assert (await api.get("/v1/inventory/SKU-00001")).json()["erp_on_hand"] == 1


async def test_keys_are_scoped_per_system(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        h = {"Idempotency-Key": "shared"}
        assert (await api.post("/v1/movements", movement("m1"), headers=h)).status_code == 202
        r = await api.post("/v1/orders", order("O-1"), as_="shop", headers=h)
        assert r.status_code == 202 and r.json()["id"] == "O-1"


async def test_a_rejected_request_is_not_recorded(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        h = {"Idempotency-Key": "fix-me"}
        assert (await api.post("/v1/movements", movement("m1", sku="NOPE"),
                               headers=h)).status_code == 422
        r = await api.post("/v1/movements", movement("m1"), headers=h)
        assert r.status_code == 202 and "idempotent-replayed" not in r.headers


async def test_records_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db")
    h = {"Idempotency-Key": "batch-7"}
    batch = {"movements": [movement("m1"), movement("m2")]}
    async with running(settings) as api:
        first = await api.post("/v1/movements:batch", batch, headers=h)
        assert first.status_code == 202 and first.json()["accepted"] == 2
    async with running(settings) as api:
        again = await api.post("/v1/movements:batch", batch, headers=h)
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert (await api.post("/v1/movements:batch", {"movements": [movement("m3")]},
                               headers=h)).status_code == 409
