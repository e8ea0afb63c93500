"""The order desk's partner calls: written to the outbox with the saga's state, made (again)
until the partner answers, answered once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.service.helpers import Api, make_settings, order, running

pytestmark = pytest.mark.anyio


async def view(api: Api, oid: str) -> dict[str, Any]:
    doc: dict[str, Any] = (await api.get(f"/v1/orders/{oid}", as_="shop")).json()
    return doc


def events(doc: dict[str, Any]) -> list[str]:
    return [t["name"] for t in doc["trace"] if t["kind"] == "event"]


async def wait_for_failed_calls(api: Api, n: int) -> dict[str, Any]:
    for _ in range(500):
        doc = await api.status()
        if doc["outbox"]["failed_calls"] >= n:
            return doc
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {n} failed outbox calls")


async def test_a_release_waits_for_the_wms_and_goes_out_once(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        await api.put("/v1/admin/faults/wms", {"mode": "down"})
        await api.stock()
        await api.post("/v1/orders", order("O-1"), as_="shop")
        doc = await wait_for_failed_calls(api, 2)
        assert doc["outbox"]["open_calls"] == 1 and not doc["drained"]
        v = await view(api, "O-1")
        assert v["waiting_on"] == "wms" and "release_accepted" not in events(v)
        commands = [t["name"] for t in v["trace"] if t["kind"] == "command"]
        assert commands.count("release_to_wms") == 1
        await api.put("/v1/admin/faults/wms", {"mode": "up"})
        await api.drain()
        v = await view(api, "O-1")
        assert v["status"] == "in_fulfilment"
        assert events(v).count("release_accepted") == 1
        assert (await api.get("/v1/admin/faults/wms")).json()["refused"] >= 2


async def test_an_open_call_is_made_again_after_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db")
    async with running(settings) as api:
        await api.put("/v1/admin/faults/erp", {"mode": "down"})
        await api.stock()
        await api.post("/v1/orders", order("O-1"), as_="shop")
        await wait_for_failed_calls(api, 1)
        v = await view(api, "O-1")
        assert v["status"] == "credit_check" and "credit_approved" not in events(v)
    async with running(settings) as api:  # the twins come back up with the service
        assert (await api.status())["outbox"]["open_calls"] == 1
        await api.drain()
        v = await view(api, "O-1")
        assert v["status"] == "in_fulfilment"
        assert events(v).count("credit_approved") == 1
        replies = [t for t in v["trace"] if t["name"] == "partner.reply"]
        assert [r["detail"] for r in replies] == ["from credit_check", "from release"]
