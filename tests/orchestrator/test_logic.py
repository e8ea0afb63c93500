"""`handle` along the happy path and along each exception path of the issue, one test each."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from integration_core.errors import IllegalTransition, PayloadError
from integration_core.models import Catalog, InvoiceLine, Item, OrderLine, UnitConversion
from integration_core.orchestrator import (
    Allocated,
    BackorderFilled,
    CancelConfirmed,
    CancelRefused,
    CancelRelease,
    CancelRequested,
    CancelTimeout,
    CarrierFailed,
    CloseException,
    CreditApproved,
    CreditHeld,
    CreditMemoPosted,
    CreditReleased,
    Delivered,
    Event,
    ExceptionQueue,
    ExceptionType,
    InvalidEvent,
    Invoiced,
    LabelCreated,
    LineRequest,
    Notice,
    NotifyCustomer,
    OpenException,
    OrchestratorConfig,
    OrderState,
    Packed,
    Picked,
    PostCreditMemo,
    PostInvoice,
    ReleaseAccepted,
    ReleaseRejected,
    ReleaseReservation,
    ReleaseToWms,
    RequestCreditCheck,
    RequestLabel,
    ReserveInventory,
    RetryRequested,
    ReturnAuthorized,
    ScheduleTimeout,
    Severity,
    ShipmentConfirmed,
    Status,
    System,
    TimeoutFired,
    Validated,
    ValidationFailed,
    handle,
    is_settled,
    start,
)
from tests.orchestrator.factories import (
    CONFIG,
    OID,
    T0,
    alloc,
    fire,
    of_type,
    order,
    reach,
    rma,
    run,
    shipment,
)


def names(commands: Sequence[object]) -> list[str]:
    return [type(c).__name__ for c in commands]


def test_happy_path_issues_each_command_once_in_order() -> None:
    state, first = start(order(), T0)
    assert state.status is Status.VALIDATING
    assert names(first) == ["ValidateOrder", "ScheduleTimeout"]
    state, commands = run(
        state,
        [
            Validated(OID),
            CreditApproved(OID),
            Allocated(OID, alloc((1, 3), (2, 2))),
            ReleaseAccepted(OID),
            Picked(OID),
            Packed(OID),
            LabelCreated(OID, "TRK-1"),
            ShipmentConfirmed(shipment("SH-1", (1, "A", 3), (2, "B", 2))),
            Invoiced(OID, "SH-1", "INV-1"),
            Delivered(OID, "SH-1"),
        ],
        now=T0 + 1,
    )
    assert names(commands) == [
        "RequestCreditCheck", "ScheduleTimeout",
        "ReserveInventory", "ScheduleTimeout",
        "ReleaseToWms", "ScheduleTimeout",
        "ScheduleTimeout",  # released: wait for the warehouse
        "ScheduleTimeout",  # picked: progress re-arms the timer
        "RequestLabel", "ScheduleTimeout",
        "ScheduleTimeout",  # labelled: wait for the confirmation
        "PostInvoice", "NotifyCustomer", "ScheduleTimeout",
        "NotifyCustomer",  # the invoice goes to the customer
        "CancelTimeout",  # delivered: completed, the timer is no longer needed
    ]  # fmt: skip
    assert state.status is Status.COMPLETED
    assert state.pending_timeout is None
    assert [(ln.ordered, ln.shipped, ln.invoiced) for ln in state.lines] == [(3, 3, 3), (2, 2, 2)]
    credit = of_type(commands, RequestCreditCheck)[0]
    assert credit.amount == Decimal(3 * 10 + 2 * 20)
    release = of_type(commands, ReleaseToWms)[0]
    assert release.lines == (LineRequest(1, "A", 3), LineRequest(2, "B", 2))
    assert release.ship_from == "DC1"
    assert of_type(commands, PostInvoice)[0].lines == (
        InvoiceLine(sku="A", quantity_base=3, unit_price=Decimal(10)),
        InvoiceLine(sku="B", quantity_base=2, unit_price=Decimal(20)),
    )
    # the timer last armed is the one cancelled
    armed = of_type(commands, ScheduleTimeout)[-1]
    assert of_type(commands, CancelTimeout) == [CancelTimeout(OID, armed.timeout_id)]


def test_timeouts_are_due_after_the_configured_delay() -> None:
    config = OrchestratorConfig(timeouts={Status.VALIDATING: 5.0})
    state, commands = start(order(), T0, config)
    timer = of_type(commands, ScheduleTimeout)[0]
    assert timer.due_at == T0 + 5.0
    assert timer.status is Status.VALIDATING
    assert state.pending_timeout is not None
    assert (state.pending_timeout.timeout_id, state.pending_timeout.due_at) == (
        timer.timeout_id,
        timer.due_at,
    )
    # the other statuses keep their defaults
    assert config.timeout(Status.RELEASING) == CONFIG.timeout(Status.RELEASING)


# --- exception paths ---------------------------------------------------------------------------


def test_validation_failure_rejects_the_order_and_records_the_shops_fault() -> None:
    state = reach(Status.VALIDATING)
    new, commands = handle(state, ValidationFailed(OID, "unknown SKU 'Z'"), T0 + 10)
    assert new.status is Status.REJECTED
    assert names(commands) == ["CancelTimeout", "OpenException", "NotifyCustomer"]
    record = of_type(commands, OpenException)[0].record
    assert (record.type, record.owner, record.severity) == (
        ExceptionType.VALIDATION_FAILED,
        System.SHOP,
        Severity.LOW,
    )
    assert (record.order_id, record.opened_at, record.detail) == (OID, T0 + 10, "unknown SKU 'Z'")
    assert of_type(commands, NotifyCustomer)[0].notice is Notice.REJECTED
    assert new.open_exceptions == ()  # the order waits on nothing: it is rejected
    assert is_settled(new)
    with pytest.raises(IllegalTransition):
        handle(new, Validated(OID), T0 + 11)


def test_credit_hold_opens_an_exception_and_release_resumes_allocation() -> None:
    state = reach(Status.CREDIT_CHECK)
    held, commands = handle(state, CreditHeld(OID, "over credit limit"), T0 + 10)
    assert held.status is Status.CREDIT_HOLD
    record = of_type(commands, OpenException)[0].record
    assert (record.type, record.owner, record.severity) == (
        ExceptionType.CREDIT_HOLD,
        System.ERP,
        Severity.MEDIUM,
    )
    assert held.open_exceptions == (record.exception_id,)
    assert held.pending_timeout is None and is_settled(held)
    released, commands = handle(held, CreditReleased(OID), T0 + 3_600)
    assert released.status is Status.ALLOCATING
    assert names(commands) == ["CloseException", "ReserveInventory", "ScheduleTimeout"]
    assert of_type(commands, CloseException)[0] == CloseException(
        OID, record.exception_id, T0 + 3_600
    )
    assert of_type(commands, ReserveInventory)[0].lines == (
        LineRequest(1, "A", 3),
        LineRequest(2, "B", 2),
    )
    assert released.open_exceptions == ()


def test_partial_allocation_backorders_and_the_backorder_is_filled_later() -> None:
    state = reach(Status.ALLOCATING)
    back, commands = handle(state, Allocated(OID, alloc((1, 3), (2, 0))), T0 + 10)
    assert back.status is Status.BACKORDERED
    assert [(ln.allocated, ln.backordered) for ln in back.lines] == [(3, 0), (0, 2)]
    notice = of_type(commands, NotifyCustomer)[0]
    assert (notice.notice, notice.detail) == (Notice.BACKORDERED, "backordered: line 2 B x2")
    timer = of_type(commands, ScheduleTimeout)[0]
    assert timer.due_at == T0 + 10 + CONFIG.timeout(Status.BACKORDERED)

    # The daily re-check asks ATP for the remainder only.
    back, commands = handle(back, fire(back), timer.due_at)
    assert of_type(commands, ReserveInventory)[0].lines == (LineRequest(2, "B", 2),)

    # Stock arrives in two receipts: the first fills part, the second completes the order.
    back, commands = handle(back, BackorderFilled(OID, alloc((2, 1))), timer.due_at + 60)
    assert back.status is Status.BACKORDERED and names(commands) == ["ScheduleTimeout"]
    with pytest.raises(InvalidEvent):  # more than is still backordered
        handle(back, BackorderFilled(OID, alloc((2, 2))), timer.due_at + 61)
    full, commands = handle(back, BackorderFilled(OID, alloc((2, 1))), timer.due_at + 120)
    assert full.status is Status.RELEASING
    assert of_type(commands, ReleaseToWms)[0].lines == (
        LineRequest(1, "A", 3),
        LineRequest(2, "B", 2),
    )
    assert all(ln.backordered == 0 for ln in full.lines)


def test_release_rejected_by_the_wms_waits_for_an_operator_retry() -> None:
    state = reach(Status.RELEASING)
    rejected, commands = handle(state, ReleaseRejected(OID, "unknown ship-from DC9"), T0 + 10)
    assert rejected.status is Status.RELEASE_REJECTED
    assert names(commands) == ["CancelTimeout", "OpenException"]
    record = of_type(commands, OpenException)[0].record
    assert (record.type, record.owner, record.severity, record.detail) == (
        ExceptionType.RELEASE_REJECTED,
        System.WMS,
        Severity.HIGH,
        "unknown ship-from DC9",
    )
    assert rejected.open_exceptions == (record.exception_id,) and is_settled(rejected)
    retried, commands = handle(rejected, RetryRequested(OID), T0 + 500)
    assert retried.status is Status.RELEASING
    assert names(commands) == ["CloseException", "ReleaseToWms", "ScheduleTimeout"]
    assert of_type(commands, ReleaseToWms)[0].attempt == 1
    assert retried.open_exceptions == ()
    # or the order is given up: the reservation is freed, nothing to cancel in the WMS
    cancelled, commands = handle(rejected, CancelRequested(OID, "customer"), T0 + 500)
    assert cancelled.status is Status.CANCELLED
    assert names(commands) == ["CloseException", "ReleaseReservation", "NotifyCustomer"]


def test_release_timeout_resends_the_same_release_then_opens_an_exception() -> None:
    state = reach(Status.RELEASING)
    first = state.pending_timeout
    assert first is not None and state.attempts == 1
    releases: list[ReleaseToWms] = []
    now = first.due_at
    for attempt in (2, 3):
        state, commands = handle(state, fire(state), now)
        assert state.status is Status.RELEASING
        assert names(commands) == ["ReleaseToWms", "ScheduleTimeout"]
        releases += of_type(commands, ReleaseToWms)
        assert releases[-1].attempt == attempt == state.attempts
        assert of_type(commands, ScheduleTimeout)[0].due_at == now + CONFIG.timeout(
            Status.RELEASING
        )
        assert state.pending_timeout is not None
        now = state.pending_timeout.due_at
    assert {r.release_id for r in releases} == {f"{OID}/release"}  # the WMS dedupes resends

    stalled, commands = handle(state, fire(state), now)
    assert names(commands) == ["OpenException"]
    record = of_type(commands, OpenException)[0].record
    assert (record.type, record.owner, record.severity) == (
        ExceptionType.NO_RESPONSE,
        System.WMS,
        Severity.HIGH,
    )
    assert record.detail == "no answer from wms after 3 attempts while releasing"
    assert stalled.status is Status.RELEASING and stalled.pending_timeout is None
    assert is_settled(stalled)

    # A timer that fires late is stale: nothing happens.
    assert handle(stalled, TimeoutFired(OID, first.timeout_id), now + 1) == (stalled, ())
    # The WMS answers at last: the exception closes, fulfilment starts.
    accepted, commands = handle(stalled, ReleaseAccepted(OID), now + 30)
    assert accepted.status is Status.IN_FULFILMENT
    assert names(commands) == ["CloseException", "ScheduleTimeout"]
    assert accepted.open_exceptions == () and accepted.attempts == 0


def test_max_attempts_is_configurable() -> None:
    config = OrchestratorConfig(max_attempts=1)
    state = reach(Status.RELEASING)
    stalled, commands = handle(state, fire(state), T0 + 1_000, config)
    assert names(commands) == ["OpenException"]
    assert stalled.open_exceptions


def test_warehouse_substitution_counts_against_the_ordered_line() -> None:
    state = reach(Status.LABELLING)
    state, _ = handle(state, LabelCreated(OID, "TRK"), T0 + 10)
    sub = shipment("SH-1", (1, "A-ALT", 3), (2, "B", 2))
    shipped, commands = handle(state, ShipmentConfirmed(sub), T0 + 20)
    assert shipped.status is Status.SHIPPED  # A-ALT fills line 1
    assert [(ln.sku, ln.shipped) for ln in shipped.lines] == [("A", 3), ("B", 2)]
    invoice = of_type(commands, PostInvoice)[0]
    # billed as shipped, at the ordered line's price
    assert invoice.lines[0] == InvoiceLine(sku="A-ALT", quantity_base=3, unit_price=Decimal(10))
    notice = of_type(commands, NotifyCustomer)[0]
    assert "substituted A-ALT instead of A on line 1" in notice.detail
    assert of_type(commands, OpenException) == []  # a substitution is not an over-shipment


def test_split_shipments_are_invoiced_one_by_one_and_duplicates_do_not_count() -> None:
    state = reach(Status.LABELLING)
    state, _ = handle(state, LabelCreated(OID, "TRK"), T0 + 10)
    first = ShipmentConfirmed(shipment("SH-1", (1, "A", 2)))
    state, commands = handle(state, first, T0 + 20)
    assert state.status is Status.SHIPPING
    invoiced = InvoiceLine(sku="A", quantity_base=2, unit_price=Decimal(10))
    assert of_type(commands, PostInvoice)[0].lines == (invoiced,)
    assert handle(state, first, T0 + 21) == (state, ())  # redelivered confirmation
    state, commands = handle(state, Invoiced(OID, "SH-1", "INV-1"), T0 + 22)
    assert handle(state, Invoiced(OID, "SH-1", "INV-1"), T0 + 23) == (state, ())
    second = ShipmentConfirmed(shipment("SH-2", (1, "A", 1), (2, "B", 2)))
    state, commands = handle(state, second, T0 + 30)
    assert state.status is Status.SHIPPED
    assert of_type(commands, PostInvoice)[0].shipment_id == "SH-2"
    assert [(ln.shipped, ln.invoiced) for ln in state.lines] == [(3, 2), (2, 0)]
    assert state.shipment_ids == {"SH-1", "SH-2"}
    state, _ = run(
        state,
        [Invoiced(OID, "SH-2", "INV-2"), Delivered(OID, "SH-1"), Delivered(OID, "SH-2")],
        now=T0 + 40,
    )
    assert state.status is Status.COMPLETED
    assert [(ln.shipped, ln.invoiced) for ln in state.lines] == [(3, 3), (2, 2)]
    with pytest.raises(InvalidEvent):
        handle(reach(Status.SHIPPING), Delivered(OID, "SH-404"), T0)


def test_carrier_failure_rebooks_with_the_next_service_then_opens_an_exception() -> None:
    state = reach(Status.LABELLING)
    assert state.carrier_service == "standard"
    services = []
    for _ in range(2):
        state, commands = handle(state, CarrierFailed(OID, "no capacity"), T0 + 10)
        assert state.status is Status.LABELLING
        assert names(commands) == ["RequestLabel", "ScheduleTimeout"]
        services.append(of_type(commands, RequestLabel)[0].service)
    assert services == ["express", "freight"]
    assert state.carrier_service == "freight"
    failed, commands = handle(state, CarrierFailed(OID, "no capacity"), T0 + 20)
    # The order now waits on a person: the label timer is cancelled, and if it fires anyway
    # it cannot ask for a label with no service left (found by the twin).
    assert names(commands) == ["CancelTimeout", "OpenException"]
    assert failed.pending_timeout is None and state.pending_timeout is not None
    late, nothing = handle(failed, TimeoutFired(OID, state.pending_timeout.timeout_id), T0 + 900)
    assert late == failed and nothing == ()
    record = of_type(commands, OpenException)[0].record
    assert (record.type, record.owner) == (ExceptionType.CARRIER_FAILED, System.CARRIER)
    assert "standard, express, freight" in record.detail
    assert failed.failed_services == ("standard", "express", "freight")
    assert is_settled(failed)
    # An operator retries: services start over from the preferred one.
    _, commands = handle(failed, RetryRequested(OID), T0 + 30)
    assert names(commands) == ["CloseException", "RequestLabel", "ScheduleTimeout"]
    assert of_type(commands, RequestLabel)[0].service == "standard"


def test_carrier_failure_after_labelling_rebooks_the_rest() -> None:
    state = reach(Status.SHIPPING)  # one shipment out, one to go
    rebook, commands = handle(state, CarrierFailed(OID, "missed pickup"), T0 + 10)
    assert rebook.status is Status.LABELLING
    assert of_type(commands, RequestLabel)[0].service == "express"
    back, _ = handle(rebook, LabelCreated(OID, "TRK-2"), T0 + 20)
    assert back.status is Status.SHIPPING and back.tracking == "TRK-2"
    assert back.lines == state.lines  # nothing shipped is lost


@pytest.mark.parametrize(
    ("status", "compensation"),
    [
        (Status.VALIDATING, []),
        (Status.CREDIT_HOLD, []),
        (Status.ALLOCATING, [()]),  # a reservation may be in flight: release it anyway
        (Status.BACKORDERED, [(LineRequest(1, "A", 1),)]),
    ],
)
def test_cancellation_before_release_frees_the_reservation(
    status: Status, compensation: list[tuple[LineRequest, ...]]
) -> None:
    state = reach(status)
    cancelled, commands = handle(state, CancelRequested(OID, "changed mind"), T0 + 10)
    assert cancelled.status is Status.CANCELLED
    assert [c.lines for c in of_type(commands, ReleaseReservation)] == compensation
    assert of_type(commands, CancelRelease) == []
    assert of_type(commands, NotifyCustomer)[0].notice is Notice.CANCELLED
    assert cancelled.pending_timeout is None and cancelled.open_exceptions == ()


def test_cancellation_after_release_cancels_in_the_wms_first() -> None:
    state = reach(Status.IN_FULFILMENT)
    cancelling, commands = handle(state, CancelRequested(OID, "changed mind"), T0 + 10)
    assert cancelling.status is Status.CANCELLING
    assert names(commands) == ["CancelRelease", "ScheduleTimeout"]
    assert of_type(commands, CancelRelease)[0].release_id == f"{OID}/release"
    cancelled, commands = handle(cancelling, CancelConfirmed(OID), T0 + 20)
    assert cancelled.status is Status.CANCELLED
    assert names(commands) == ["CancelTimeout", "ReleaseReservation", "NotifyCustomer"]
    assert of_type(commands, ReleaseReservation)[0].lines == (
        LineRequest(1, "A", 3),
        LineRequest(2, "B", 2),
    )
    # The WMS may refuse: fulfilment goes on and the customer is told.
    refused, commands = handle(cancelling, CancelRefused(OID, "already picked"), T0 + 20)
    assert refused.status is Status.IN_FULFILMENT
    assert names(commands) == ["NotifyCustomer", "ScheduleTimeout"]
    # Once packed, it is too late to cancel.
    with pytest.raises(IllegalTransition):
        handle(reach(Status.LABELLING), CancelRequested(OID), T0)


def test_cancellation_while_the_release_is_unanswered_is_compensated_in_the_wms() -> None:
    cancelling, commands = handle(reach(Status.RELEASING), CancelRequested(OID), T0 + 10)
    assert cancelling.status is Status.CANCELLING
    assert names(commands) == ["CancelRelease", "ScheduleTimeout"]


def test_return_after_delivery_posts_a_credit_memo() -> None:
    state = reach(Status.COMPLETED)
    event = ReturnAuthorized(rma("RMA-1", ("A", 1), ("B", 2)))
    pending, commands = handle(state, event, T0 + 100)
    assert pending.status is Status.RETURN_PENDING
    memo = of_type(commands, PostCreditMemo)[0]
    assert memo.lines == (
        InvoiceLine(sku="A", quantity_base=1, unit_price=Decimal(10)),
        InvoiceLine(sku="B", quantity_base=2, unit_price=Decimal(20)),
    )
    assert [ln.returned for ln in pending.lines] == [1, 2]
    done, commands = handle(pending, CreditMemoPosted(OID, "RMA-1", "CM-1"), T0 + 200)
    assert done.status is Status.COMPLETED
    assert names(commands) == ["CancelTimeout", "NotifyCustomer"]
    assert of_type(commands, NotifyCustomer)[0].notice is Notice.REFUNDED
    assert handle(done, event, T0 + 300) == (done, ())  # the same RMA again
    with pytest.raises(InvalidEvent):  # line 2 has nothing left to return
        handle(done, ReturnAuthorized(rma("RMA-2", ("B", 1))), T0 + 300)
    with pytest.raises(InvalidEvent):
        handle(pending, CreditMemoPosted(OID, "RMA-9", "CM-9"), T0 + 200)
    # Not delivered yet: no return.
    with pytest.raises(IllegalTransition):
        handle(reach(Status.SHIPPED), event, T0)


def test_return_of_a_substitute_maps_to_the_line_it_was_shipped_for() -> None:
    state = reach(Status.LABELLING)
    state, _ = run(
        state,
        [
            LabelCreated(OID, "TRK"),
            ShipmentConfirmed(shipment("SH-1", (1, "A-ALT", 3), (2, "B", 2))),
            Invoiced(OID, "SH-1", "INV-1"),
            Delivered(OID, "SH-1"),
        ],
    )
    assert state.status is Status.COMPLETED
    with pytest.raises(InvalidEvent):  # "A" itself never shipped
        handle(state, ReturnAuthorized(rma("RMA-1", ("A", 1))), T0 + 100)
    pending, commands = handle(state, ReturnAuthorized(rma("RMA-1", ("A-ALT", 2))), T0 + 100)
    assert [ln.returned for ln in pending.lines] == [2, 0]
    assert of_type(commands, PostCreditMemo)[0].lines[0].sku == "A-ALT"


def test_over_shipment_is_recorded_and_the_excess_is_not_counted() -> None:
    state = reach(Status.LABELLING)
    state, _ = handle(state, LabelCreated(OID, "TRK"), T0 + 10)
    over = ShipmentConfirmed(shipment("SH-1", (1, "A", 5)))
    state, commands = handle(state, over, T0 + 20)
    assert state.status is Status.SHIPPING
    assert state.lines[0].shipped == 3  # ordered 3, 5 went out
    assert of_type(commands, PostInvoice)[0].lines[0].quantity_base == 3
    record = of_type(commands, OpenException)[0].record
    assert (record.type, record.owner, record.severity) == (
        ExceptionType.OVER_SHIPMENT,
        System.WMS,
        Severity.MEDIUM,
    )
    assert record.detail == "shipment SH-1 exceeds the order, not counted: line 1 A +2"
    assert state.open_exceptions == ()  # informational: the order goes on
    # The rest ships, then a stray extra parcel: nothing counts, nothing is invoiced.
    state, _ = handle(state, ShipmentConfirmed(shipment("SH-2", (2, "B", 2))), T0 + 30)
    assert state.status is Status.SHIPPED
    extra, commands = handle(state, ShipmentConfirmed(shipment("SH-3", (2, "B", 1))), T0 + 40)
    assert names(commands) == ["OpenException", "NotifyCustomer"]
    assert [ln.shipped for ln in extra.lines] == [3, 2]
    with pytest.raises(InvalidEvent):
        handle(extra, Invoiced(OID, "SH-3", "INV-3"), T0 + 50)


def test_shipment_for_an_unknown_line_is_invalid_and_changes_nothing() -> None:
    state = reach(Status.SHIPPING)
    with pytest.raises(InvalidEvent) as err:
        handle(state, ShipmentConfirmed(shipment("SH-9", (1, "A", 1), (7, "Z", 1))), T0)
    assert err.value.field == "shipment.lines[1].order_line_no"
    assert err.value.status_hint == 422
    assert state == reach(Status.SHIPPING)


def test_overdue_warehouse_opens_an_exception_and_progress_closes_it() -> None:
    state = reach(Status.IN_FULFILMENT)
    late, commands = handle(state, fire(state), T0 + 1e6)
    record = of_type(commands, OpenException)[0].record
    assert (record.type, record.owner) == (ExceptionType.OVERDUE, System.WMS)
    picked, commands = handle(late, Picked(OID), T0 + 2e6)
    assert names(commands) == ["CloseException", "ScheduleTimeout"]
    assert picked.open_exceptions == () and picked.pending_timeout is not None


def test_exception_commands_drive_the_queue() -> None:
    queue = ExceptionQueue()
    state = reach(Status.CREDIT_CHECK)
    steps: list[tuple[Event, float]] = [(CreditHeld(OID), T0 + 10), (CreditReleased(OID), T0 + 20)]
    for event, now in steps:
        state, commands = handle(state, event, now)
        for c in commands:
            if isinstance(c, OpenException):
                queue.open(c.record)
            elif isinstance(c, CloseException):
                queue.close(c.exception_id, c.at)
    assert len(queue) == 0
    [closed] = queue.closed()
    assert (closed.type, closed.opened_at, closed.closed_at) == (
        ExceptionType.CREDIT_HOLD,
        T0 + 10,
        T0 + 20,
    )


# --- building the state ------------------------------------------------------------------------


def test_new_state_converts_order_units_with_the_item_master() -> None:
    catalog = Catalog(items=[Item(sku="A", conversions=(UnitConversion(unit="CS", factor=12),))])
    base = order()
    line = OrderLine(line_no=1, sku="A", quantity=Decimal(2), unit="CS", unit_price=Decimal(30))
    cased = base.model_copy(update={"lines": (line,)})
    state = OrderState.new(cased, catalog)
    assert (state.lines[0].ordered, state.lines[0].unit_price) == (24, Decimal("2.5000"))
    with pytest.raises(PayloadError):
        OrderState.new(cased)  # CS without the item master cannot be converted


def test_price_per_base_unit_is_rounded_to_money_precision() -> None:
    catalog = Catalog(items=[Item(sku="A", conversions=(UnitConversion(unit="CS", factor=3),))])
    line = OrderLine(line_no=1, sku="A", quantity=Decimal(1), unit="CS", unit_price=Decimal(10))
    state = OrderState.new(order().model_copy(update={"lines": (line,)}), catalog)
    assert state.lines[0].unit_price == Decimal("3.3333")


def test_allocation_for_an_unknown_line_is_invalid() -> None:
    state = reach(Status.ALLOCATING)
    with pytest.raises(InvalidEvent):
        handle(state, Allocated(OID, alloc((9, 1))), T0)
    with pytest.raises(InvalidEvent):
        handle(state, Allocated(OID, alloc((1, -1))), T0)
    assert state == reach(Status.ALLOCATING)
