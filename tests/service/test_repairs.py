"""Repairs in the live service: the reconciler's rule (`RepairGate`), the ERP's adjustment
posted through the partner port, once the break has persisted `repair_after_s`."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration_core.engine.partners import Posting
from sim.live.erp import LiveErp
from tests.service.helpers import SKU, make_settings, movement, running, twins_db

pytestmark = pytest.mark.anyio


def _book_behind_the_cores_back(db: Path, units: int) -> None:
    """Someone changes the ERP's stock by hand: a break no movement explains."""
    erp = LiveErp(db)
    try:
        erp.post([Posting(message_id="manual:1", movement_id="manual-1", sku=SKU,
                          location="A-01", delta=units)])
    finally:
        erp.close()


async def test_a_persisting_break_is_repaired_in_the_erp(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", repair_after_s=0.0)
    async with running(settings) as api:
        assert (await api.post("/v1/movements", movement("m1", quantity=5))).status_code == 202
        await api.drain()
        _book_behind_the_cores_back(twins_db(settings), 2)
        first = (await api.post("/v1/reconcile", as_="admin")).json()
        assert first["unexplained_units"] == 2 and first["repairs_posted"] == 1
        second = (await api.post("/v1/reconcile", as_="admin")).json()
        assert second["divergence_units"] == 0 and second["repairs_posted"] == 0
        assert (await api.status())["repairs"]["posted"] == 1


async def test_without_repair_after_s_the_break_stays_reported(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db")
    async with running(settings) as api:
        await api.post("/v1/movements", movement("m1", quantity=5))
        await api.drain()
        _book_behind_the_cores_back(twins_db(settings), 2)
        for _ in range(2):
            doc = (await api.post("/v1/reconcile", as_="admin")).json()
            assert doc["unexplained_units"] == 2 and doc["repairs_posted"] == 0
