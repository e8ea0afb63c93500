"""The engine over an in-memory store and a manual clock: no file, no thread, no loop."""

from __future__ import annotations

import pytest

from integration_core.bus import MemoryStore
from integration_core.clock import ManualClock
from integration_core.engine import Engine
from integration_core.engine.partners import Stock
from integration_core.envelope import Envelope, wrap
from integration_core.models import Catalog, Item, Movement, UnitConversion
from tests.service.helpers import movement


def engine() -> Engine:
    case = (UnitConversion(unit="CS", factor=12),)
    catalog = Catalog(Item(sku=f"SKU-{i:05d}", conversions=case, unit_value=1)
                      for i in range(5))
    return Engine(MemoryStore(), ManualClock(0.0), catalog)


@pytest.mark.parametrize("extra", [{}, {"unit": "CS", "quantity": 2},
                                   {"kind": "adjustment", "quantity": -3}])
def test_movement_envelope_is_what_wrap_builds(extra: dict[str, object]) -> None:
    e = engine()
    m = e.catalog.parse(Movement, {**movement("m1"), **extra})
    fast = e.movement_envelope(m, "wms")
    assert fast == wrap(m, source="wms", occurred_at=m.occurred_at)
    # and it survives a round trip through validation unchanged
    assert Envelope.model_validate(fast.model_dump(mode="json")) == fast


def test_movements_reach_the_wms_view_through_the_inbox_and_wait_for_the_erp() -> None:
    e = engine()
    ms = [e.catalog.parse(Movement, movement(f"m{i}", quantity=i + 1)) for i in range(3)]
    assert [a.duplicate for a in e.accept_movements(ms + ms[:1], "wms")] == [
        False, False, False, True]
    handled = [e.pump(0.0) for _ in range(4)]
    assert handled == [1, 1, 1, 0]  # one ordering key: its head at a time
    assert e.wms.rows(e.store, "SKU-00001") == {("SKU-00001", "A-01", None): 6}
    due = e.erp_due(0.0, 10)
    assert [d.envelope.payload["movement_id"] for d in due] == ["m0"]
    e.settle(due, None, 1.0)
    assert e.status()["consumers"]["erp"]["backlog"] == 2


def _stock(on_hand: int) -> Stock:
    return Stock(rows=[("SKU-00001", "A-01", None, on_hand)], booked=[])


def test_a_break_is_repaired_in_the_erp_only_once_it_persisted() -> None:
    e = Engine(MemoryStore(), ManualClock(0.0), engine().catalog, repair_after_s=60.0)
    e.accept_movements([e.catalog.parse(Movement, movement("m1", quantity=5))], "wms")
    e.pump(0.0)
    wms, _ = e.snapshot()
    e.reconcile(wms, [], _stock(7), now=0.0)  # the ERP holds 2 units nobody moved
    assert e.ripe == [] and e.repair_postings() == []  # too young to repair
    e.reconcile(wms, [], _stock(7), now=30.0)
    assert e.repair_postings() == []
    e.reconcile(wms, [], _stock(7), now=61.0)
    (posting,) = e.repair_postings()
    assert (posting["sku"], posting["location"], posting["delta"]) == ("SKU-00001", "A-01", -2)
    assert posting["message_id"] == f"repair:{posting['movement_id']}"
    e.reconcile(wms, [], _stock(5), now=90.0)  # booked: nothing left to repair
    assert e.repair_postings() == []


def test_without_a_gate_repairs_are_reported_only() -> None:
    e = engine()
    e.accept_movements([e.catalog.parse(Movement, movement("m1", quantity=5))], "wms")
    e.pump(0.0)
    wms, _ = e.snapshot()
    result = e.reconcile(wms, [], _stock(7), now=0.0)
    assert result.repairs and e.repair_postings() == []
    assert e.status()["repairs"] == {"gate_s": None, "ripe": 0, "posted": 0}
