"""Item masters per site: a movement of an item its site does not know yet waits as a dead
letter and is replayed once the item arrives; other sites go on."""

from __future__ import annotations

from integration_core.bus import MemoryStore
from integration_core.clock import ManualClock
from integration_core.engine import Engine
from integration_core.engine.items import SiteItems
from integration_core.models import Movement
from tests.engine.test_core import engine as plain
from tests.service.helpers import movement


def test_site_items_know_what_arrived() -> None:
    items = SiteItems({"3PL": ["SKU-00001"]})
    assert items.maps("SKU-00002", "A-01")  # a site sharing the ERP's master
    assert items.maps("SKU-00001", "3PL") and not items.maps("SKU-00002", "3PL")
    assert items.arrived("SKU-00002", "3PL") and not items.arrived("SKU-00002", "3PL")
    assert items.maps("SKU-00002", "3PL") and items.sites == ["3PL"]


def test_an_unmapped_movement_waits_for_its_item_and_is_replayed_once() -> None:
    catalog = plain().catalog
    e = Engine(MemoryStore(), ManualClock(0.0), catalog,
               site_items=SiteItems({"3PL": ["SKU-00001"]}))

    def parse(mid: str, sku: str, loc: str) -> Movement:
        return catalog.parse(Movement, {**movement(mid, quantity=2), "sku": sku, "location": loc})

    e.accept_movements([parse("m1", "SKU-00002", "3PL"), parse("m2", "SKU-00001", "3PL"),
                        parse("m3", "SKU-00002", "A-01")], "wms")
    for _ in range(3):
        e.pump(0.0)
    due = e.erp_due(0.0, 10)
    assert sorted(d.envelope.payload["movement_id"] for d in due) == ["m2", "m3"]
    e.settle(due, None, 1.0)
    waiting = e.dead_letters()
    assert sorted(d.consumer for d in waiting) == ["erp", "wms"]
    assert all(not d.transient and "item master of site '3PL'" in d.cause_message
               for d in waiting)
    assert e.redrive() == 0  # no policy redrives it: only the item's arrival helps
    assert e.wms.rows(e.store, "SKU-00002") == {("SKU-00002", "A-01", None): 2}

    assert e.item_arrived("SKU-00002", "3PL") == 2
    assert e.item_arrived("SKU-00002", "3PL") == 0  # arrived before: nothing to replay
    e.pump(1.0)
    due = e.erp_due(1.0, 10)
    assert [d.envelope.payload["movement_id"] for d in due] == ["m1"]
    e.settle(due, None, 2.0)
    assert e.dead_letters() == []
    assert e.wms.rows(e.store, "SKU-00002")[("SKU-00002", "3PL", None)] == 2
