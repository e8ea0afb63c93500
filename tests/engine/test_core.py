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


def test_one_movement_at_a_time_is_accepted_delivered_and_acked_as_in_a_batch() -> None:
    """`accept_movement`, `deliver` and `ack`: the twin's one-message path ends where
    `accept_movements`, `erp_due` and `settle` do."""
    one, batch = engine(), engine()
    woken: list[int] = []
    one.on_publish = lambda: woken.append(1)
    ms = [one.catalog.parse(Movement, movement(f"m{i}", quantity=i + 1)) for i in range(3)]
    accepted = [one.accept_movement(m, "wms") for m in [*ms, ms[0]]]
    assert [a.duplicate for a in accepted] == [False, False, False, True]
    assert [a.position for a in accepted] == [1, 2, 3, None]
    assert accepted == batch.accept_movements([*ms, ms[0]], "wms")
    assert len(woken) == 3  # a duplicate wakes nobody
    for _ in ms:  # one ordering key: its head at a time, to the WMS view and the ERP
        (d,) = one.deliver(0.0, ["wms", "erp"])
        assert d.consumer == "erp"
        one.ack(d, 0.0)
        batch.pump(0.0)
        batch.settle(batch.erp_due(0.0, 10), None, 0.0)
    assert one.deliver(0.0, ["wms", "erp"]) == [] and one.next_wake_at() is None
    assert one.outcomes == batch.outcomes == {"applied": 6}
    assert one.wms.table(one.store) == batch.wms.table(batch.store)
    assert one.status()["consumers"] == batch.status()["consumers"]
