"""The order desk's cancellations and returns: the saga's paths carried out through the
outbox (the WMS's `cancel_release`, the ERP's `credit_memo`), each once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from integration_core.engine import Engine
from integration_core.engine.calls import Call
from integration_core.engine.desk import CANCEL_REFUSED, RESERVED
from integration_core.engine.partners import OPERATIONS
from integration_core.envelope import OrderCancellation
from integration_core.models import (
    Milestone,
    ReturnAuthorization,
    ReturnLine,
    SalesOrder,
    Shipment,
    ShipmentMilestone,
)
from tests.engine.test_desk import SKU, USUAL, engine, receive, run
from tests.service.helpers import order, shipment

AT = datetime(2026, 1, 5, 9, tzinfo=UTC)
ROW = f"{SKU}\tA-01"
ANSWERS: dict[str, dict[str, Any]] = {**USUAL, "cancel_release": {"cancelled": True},
                                      "credit_memo": {"credit_memo_id": "CM-1"}}


_HELD: dict[int, list[Call]] = {}
"""Per engine: calls taken from its outbox and not answered yet (`calls_due` hands each
out once)."""


def _due(e: Engine) -> list[Call]:
    calls = _HELD.pop(id(e), []) + e.calls_due(e.clock.now())
    return sorted(calls, key=lambda c: c.call_id)


def answer(e: Engine, only: set[str] | None = None, **answers: Any) -> list[str]:
    """Answer the open outbox calls (of the ops in `only`, when given), again until none is
    left; the ops answered, in order. The others stay open."""
    made: list[str] = []
    while True:
        due = _due(e)
        now = [c for c in due if only is None or c.op in only]
        _HELD[id(e)] = [c for c in due if c not in now]
        if not now:
            return made
        for call in now:
            assert call.op in OPERATIONS
            made.append(call.op)
            e.answer(call, answers.get(call.op, ANSWERS[call.op]), None)
            run(e)


def open_calls(e: Engine) -> list[str]:
    due = _due(e)
    _HELD[id(e)] = due
    return sorted(c.op for c in due)


def open_call(e: Engine) -> Call:
    (call,) = _due(e)
    _HELD[id(e)] = [call]
    return call


def cancel(e: Engine, oid: str, message_id: str | None = None) -> None:
    c = OrderCancellation(order_id=oid, reason="changed my mind", requested_at=AT)
    if message_id is None:
        e.accept_cancellation(c, "shop")
    else:  # the same cancel under another message id (a resend the bus cannot tell)
        from integration_core.envelope import wrap
        e.bus.publish(wrap(c, source="shop", occurred_at=AT, message_id=message_id),
                      e.clock.now())
    run(e)


def place(e: Engine, oid: str, quantity: int = 3) -> None:
    e.accept_order(e.catalog.parse(SalesOrder, order(oid, quantity=quantity)), "shop")
    run(e)


def names(e: Engine, oid: str, kind: str) -> list[str]:
    return [t["name"] for t in e.order(oid)["trace"] if t["kind"] == kind]


def notices(e: Engine, oid: str) -> list[str]:
    return [t["detail"].split(":")[0] for t in e.order(oid)["trace"]
            if t["kind"] == "command" and t["name"] == "notify_customer"]


def ship(e: Engine, oid: str, quantity: int = 3) -> None:
    e.accept_shipment(e.catalog.parse(Shipment, shipment(f"S-{oid}", oid, quantity=quantity)),
                      "wms")
    run(e)


def deliver(e: Engine, oid: str) -> None:
    e.accept_milestone(ShipmentMilestone(shipment_id=f"S-{oid}", tracking=f"T-S-{oid}",
                                         milestone=Milestone.DELIVERED, at=AT), "carrier")
    run(e)


def completed(e: Engine, oid: str) -> None:
    receive(e, f"r-{oid}", 3)
    place(e, oid)
    answer(e)
    ship(e, oid)
    answer(e)
    deliver(e, oid)
    assert e.order(oid)["status"] == "completed"


def rma(rma_id: str, oid: str, quantity: int = 2) -> ReturnAuthorization:
    return ReturnAuthorization(rma_id=rma_id, order_id=oid, authorized_at=AT,
                               lines=(ReturnLine(sku=SKU, quantity_base=quantity),))


# -- cancellations ---------------------------------------------------------------------------


def test_a_cancel_before_release_cancels_at_once_and_frees_what_was_held() -> None:
    e = engine()
    receive(e, "r1", 2)
    place(e, "O-1", quantity=3)
    answer(e)  # credit approved; 2 of 3 allocated: backordered, 2 held
    assert e.order("O-1")["status"] == "backordered"
    assert e.store.get_state(RESERVED, ROW) == 2
    cancel(e, "O-1")
    assert e.order("O-1")["status"] == "cancelled"
    assert e.store.get_state(RESERVED, ROW) == 0
    assert open_calls(e) == []  # nothing was released: the WMS is not asked
    assert notices(e, "O-1")[-1] == "cancelled"


def test_a_cancel_during_the_credit_check_leaves_the_late_answer_unused() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1")
    cancel(e, "O-1")
    assert e.order("O-1")["status"] == "cancelled"
    assert answer(e) == ["credit_check"]  # the call was out already
    assert e.order("O-1")["status"] == "cancelled"
    assert "answer not used" in names(e, "O-1", "note")
    assert e.store.get_state(RESERVED, ROW) in (None, 0)


def test_a_cancel_while_releasing_asks_the_wms_and_frees_the_units_once_it_confirms() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1")
    answer(e, only={"credit_check"})
    assert e.order("O-1")["status"] == "releasing"
    cancel(e, "O-1")
    assert e.order("O-1")["status"] == "cancelling"
    assert open_calls(e) == ["cancel_release", "release"]
    answer(e, only={"release"})  # the WMS took the release before the cancel came
    assert e.order("O-1")["status"] == "cancelling"
    assert e.store.get_state(RESERVED, ROW) == 3  # still held until the WMS confirms
    answer(e)
    assert e.order("O-1")["status"] == "cancelled"
    assert e.store.get_state(RESERVED, ROW) == 0


def test_a_cancel_in_fulfilment_that_the_wms_refuses_carries_on_and_says_so() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1")
    answer(e)
    assert e.order("O-1")["status"] == "in_fulfilment"
    cancel(e, "O-1")
    call = open_call(e)
    assert call.op == "cancel_release"
    assert call.record["body"] == {"order_id": "O-1", "reason": "changed my mind"}
    answer(e, cancel_release={"cancelled": False, "reason": "picking"})
    view = e.order("O-1")
    assert view["status"] == "in_fulfilment"
    assert notices(e, "O-1")[-1] == "cancel_refused"
    assert e.store.get_state(RESERVED, ROW) == 3


def test_a_cancel_after_packing_is_refused_in_the_trace_and_nothing_changes() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1")
    answer(e)
    ship(e, "O-1")
    before = e.order("O-1")["status"]
    assert before in ("shipped", "shipping")
    cancel(e, "O-1")
    assert e.order("O-1")["status"] == before
    assert names(e, "O-1", "note")[-1] == CANCEL_REFUSED
    assert "cancel_release" not in open_calls(e)
    assert not e.dead_letters("orders")


def test_a_shipment_confirmed_while_cancelling_means_the_wms_could_not_cancel() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1")
    answer(e)
    cancel(e, "O-1")
    assert e.order("O-1")["status"] == "cancelling"
    ship(e, "O-1")  # the goods left before the WMS saw the cancel
    assert e.order("O-1")["status"] in ("shipping", "shipped")
    assert "cancel_refused" in notices(e, "O-1")
    answer(e)  # the WMS's answer arrives late: not used; the invoice is posted
    assert "answer not used" in names(e, "O-1", "note")
    assert not e.dead_letters("orders")


def test_a_cancel_sent_twice_asks_the_wms_once() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1")
    answer(e)
    cancel(e, "O-1")
    cancel(e, "O-1", message_id="resend-1")
    assert open_calls(e) == ["cancel_release"]
    assert "cancel repeated" in names(e, "O-1", "note")
    answer(e)
    cancel(e, "O-1", message_id="resend-2")
    assert e.order("O-1")["status"] == "cancelled" and open_calls(e) == []


def test_a_cancel_for_an_order_never_placed_is_dead_lettered_with_its_cause() -> None:
    e = engine()
    cancel(e, "O-404")
    (dead,) = e.dead_letters("orders")
    assert "O-404" in dead.cause_message


# -- returns ---------------------------------------------------------------------------------


def test_a_return_posts_one_credit_memo_and_the_order_is_refunded() -> None:
    e = engine()
    completed(e, "O-1")
    e.accept_return(rma("RMA-1", "O-1"), "shop")
    run(e)
    assert e.order("O-1")["status"] == "return_pending"
    call = open_call(e)
    assert call.op == "credit_memo"
    body = call.record["body"]
    assert {k: body[k] for k in ("rma_id", "order_id", "customer_id")} == {
        "rma_id": "RMA-1", "order_id": "O-1", "customer_id": "C-1"}
    (line,) = body["lines"]  # at the invoiced price
    assert (line["sku"], line["quantity_base"], Decimal(line["unit_price"])) == (
        SKU, 2, Decimal("2.50"))
    answer(e)
    assert e.order("O-1")["status"] == "completed"
    assert notices(e, "O-1")[-1] == "refunded"


def test_the_same_rma_twice_is_one_credit_memo() -> None:
    e = engine()
    completed(e, "O-1")
    e.accept_return(rma("RMA-1", "O-1"), "shop")
    run(e)
    from integration_core.envelope import wrap
    e.bus.publish(wrap(rma("RMA-1", "O-1"), source="shop", occurred_at=AT,
                       message_id="resend"), 0.0)
    run(e)
    assert answer(e) == ["credit_memo"]
    e.bus.publish(wrap(rma("RMA-1", "O-1"), source="shop", occurred_at=AT,
                       message_id="resend-later"), 0.0)
    run(e)
    assert answer(e) == [] and e.order("O-1")["status"] == "completed"
    assert names(e, "O-1", "note").count("return repeated") == 2


def test_a_return_before_the_order_completes_waits_and_then_gets_its_memo() -> None:
    e = engine()
    receive(e, "r1", 3)
    place(e, "O-1")
    answer(e)
    ship(e, "O-1")
    answer(e)  # invoiced; not delivered yet: shipped, not completed
    assert e.order("O-1")["status"] == "shipped"
    e.accept_return(rma("RMA-1", "O-1", 1), "shop")
    run(e)
    assert "return held" in names(e, "O-1", "note") and open_calls(e) == []
    deliver(e, "O-1")
    assert e.order("O-1")["status"] == "return_pending"
    e.accept_return(rma("RMA-2", "O-1", 1), "shop")  # a second while the first waits
    run(e)
    assert answer(e, credit_memo={"credit_memo_id": "CM-x"}) == ["credit_memo", "credit_memo"]
    assert e.order("O-1")["status"] == "completed"
    assert notices(e, "O-1").count("refunded") == 2


def test_a_return_of_more_than_shipped_or_of_a_cancelled_order_is_dead_lettered() -> None:
    e = engine()
    completed(e, "O-1")
    e.accept_return(rma("RMA-1", "O-1", quantity=4), "shop")
    run(e)
    receive(e, "r2", 3)
    place(e, "O-2")
    cancel(e, "O-2")
    e.accept_return(rma("RMA-2", "O-2"), "shop")
    run(e)
    causes = sorted(d.cause_message for d in e.dead_letters("orders"))
    assert len(causes) == 2
    assert any("more than shipped" in c for c in causes)
    assert any("cancelled" in c for c in causes)
    assert e.order("O-1")["status"] == "completed" and "credit_memo" not in open_calls(e)


def test_the_desk_folds_a_return_back_after_a_restart() -> None:
    e = engine()
    completed(e, "O-1")
    e.accept_return(rma("RMA-1", "O-1"), "shop")
    run(e)
    again = Engine(e.store, e.clock, e.catalog)
    assert again.order("O-1")["status"] == "return_pending"
    assert [c.op for c in again.calls_due(0.0)] == ["credit_memo"]
