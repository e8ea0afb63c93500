"""The order desk's allocation: against the core's WMS view less what open orders hold."""

from __future__ import annotations

from typing import Any

import pytest

from integration_core.bus import MemoryStore
from integration_core.clock import ManualClock
from integration_core.engine import Engine
from integration_core.engine.desk import RESERVED
from integration_core.errors import StorageError
from integration_core.models import Catalog, Item, Movement, SalesOrder, Shipment
from tests.service.helpers import movement, order, shipment

SKU = "SKU-00001"


def engine() -> Engine:
    return Engine(MemoryStore(), ManualClock(0.0),
                  Catalog(Item(sku=f"SKU-{i:05d}", unit_value=1) for i in range(3)))


def run(e: Engine) -> None:
    while e.pump(e.clock.now()):
        pass


USUAL: dict[str, dict[str, Any]] = {"credit_check": {"approved": True},
                                    "release": {"accepted": True},
                                    "invoice": {"invoice_id": "INV-1"}}


def answer_all(e: Engine, **answers: Any) -> list[str]:
    """Answer every due outbox call (credit approved, release accepted, invoiced)."""
    made = []
    for call in e.calls_due(e.clock.now()):
        made.append(call.op)
        usual = USUAL[call.op]
        e.answer(call, answers.get(call.op, usual), None)
        run(e)
    return made


def place(e: Engine, oid: str, quantity: int, ship_from: str | None = None) -> dict[str, Any]:
    doc = {**order(oid, quantity=quantity), "ship_from": ship_from}
    e.accept_order(e.catalog.parse(SalesOrder, doc), "shop")
    run(e)
    while answer_all(e):
        pass
    return e.order(oid)


def receive(e: Engine, mid: str, quantity: int, location: str = "A-01") -> None:
    e.accept_movements([e.catalog.parse(Movement, movement(mid, quantity=quantity,
                                                            location=location))], "wms")
    run(e)


def test_an_order_is_allocated_what_the_wms_view_holds_and_the_rest_waits() -> None:
    e = engine()
    receive(e, "r1", 5)
    first = place(e, "O-1", 3)
    assert first["status"] == "in_fulfilment" and first["lines"][0]["allocated"] == 3
    second = place(e, "O-2", 3)  # 5 on hand, 3 held by O-1: 2 left to promise
    assert second["lines"][0]["allocated"] == 2
    assert e.store.get_state(RESERVED, f"{SKU}\tA-01") == 5


def test_ship_from_allocates_at_that_warehouse_only() -> None:
    e = engine()
    receive(e, "r1", 10, location="WH-A")
    assert place(e, "O-1", 2, ship_from="WH-B")["status"] == "backordered"
    assert place(e, "O-2", 2, ship_from="WH-A")["lines"][0]["allocated"] == 2


def test_a_confirmed_shipment_gives_its_reservation_back() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1", 3)
    e.accept_movements([e.catalog.parse(Movement, movement("p1", kind="pick", quantity=3))],
                       "wms")
    e.accept_shipment(e.catalog.parse(Shipment, shipment("S-1", "O-1")), "wms")
    run(e)
    answer_all(e)
    assert e.order("O-1")["status"] in ("shipped", "invoiced")
    assert e.store.get_state(RESERVED, f"{SKU}\tA-01") == 0


def test_a_refused_release_keeps_the_units_held_while_a_person_decides() -> None:
    e = engine()
    receive(e, "r1", 3)
    e.accept_order(e.catalog.parse(SalesOrder, order("O-1", quantity=3)), "shop")
    run(e)
    while answer_all(e, release={"accepted": False, "reason": "no such warehouse"}):
        pass
    view = e.order("O-1")
    assert view["status"] == "release_rejected" and view["exceptions"]
    assert e.store.get_state(RESERVED, f"{SKU}\tA-01") == 3


def test_opening_balances_load_once_and_count_for_allocation() -> None:
    e = engine()
    assert e.open_balances({(SKU, "A-01", None): 4})
    assert not e.open_balances({(SKU, "A-01", None): 99})  # the same load again: no-op
    assert place(e, "O-1", 6)["lines"][0]["allocated"] == 4


def test_a_failed_call_is_made_again_after_the_backoff_and_not_before() -> None:
    e = engine()
    receive(e, "r1", 3)
    e.accept_order(e.catalog.parse(SalesOrder, order("O-1")), "shop")
    run(e)
    (call,) = e.calls_due(0.0)
    assert call.op == "credit_check" and call.attempt == 1
    retry_at = e.call_failed(call, 0.0)
    assert retry_at > 0 and e.calls.next_at() == retry_at
    assert e.calls_due(retry_at - 1e-6) == []
    (again,) = e.calls_due(retry_at)
    assert (again.call_id, again.attempt) == (call.call_id, 2)


def test_a_store_that_fails_while_calls_are_read_loses_none_of_them() -> None:
    e = engine()
    receive(e, "r1", 9)
    for oid in ("O-1", "O-2", "O-3"):
        e.accept_order(e.catalog.parse(SalesOrder, order(oid)), "shop")
    run(e)
    first, *others = e.calls_due(0.0)  # made and failed once: its retry keeps its attempt
    retry_at = e.call_failed(first, 0.0)
    e.calls.again([(c.call_id, c.attempt) for c in others], 0.0)  # the others: not made yet
    read = e.store.get_state
    seen: list[str] = []

    def failing(ns: str, key: str) -> Any:
        seen.append(key)
        if len(seen) == 2:  # the second record read fails: the store went away
            raise StorageError("disk I/O error")
        return read(ns, key)

    e.store.get_state = failing  # type: ignore[method-assign]
    with pytest.raises(StorageError):
        e.calls_due(retry_at)
    e.store.get_state = read  # type: ignore[method-assign]
    assert e.calls_due(retry_at + 0.5) == []  # due again a second later, not lost
    again = e.calls_due(retry_at + 1.0)
    assert sorted((c.call_id, c.attempt) for c in again) == sorted(
        [(first.call_id, 2)] + [(c.call_id, c.attempt) for c in others])
