"""`handle`: the pure function that moves an order through the table.

    handle(state, event, now) -> (new_state, commands)

Steps: look the (status, event) pair up in the table (absent: IllegalTransition); apply the
event's data (invalid data: InvalidEvent; a duplicate or stale event: no change, no commands);
pick the row whose guard holds; derive the housekeeping commands; build the row's commands.
Errors leave the input untouched: states are frozen and nothing is built until all checks pass.

Idempotence: a second ShipmentConfirmed / Invoiced / Delivered for the same shipment, a second
ReturnAuthorized for the same RMA and a TimeoutFired that is not the pending timer change
nothing. Over-shipment: a confirmation that ships more than a line still needs counts what
fits, opens an OVER_SHIPMENT exception for the rest and never counts the excess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from integration_core.models import Catalog, InvoiceLine, SalesOrder
from integration_core.orchestrator.commands import (
    CancelRelease,
    CancelTimeout,
    CloseException,
    Command,
    CommandKind,
    LineRequest,
    Notice,
    NotifyCustomer,
    OpenException,
    PostCreditMemo,
    PostInvoice,
    ReleaseReservation,
    ReleaseToWms,
    RequestCreditCheck,
    RequestLabel,
    ReserveInventory,
    ScheduleTimeout,
    ValidateOrder,
)
from integration_core.orchestrator.config import DEFAULT_CONFIG, OrchestratorConfig
from integration_core.orchestrator.events import (
    Allocated,
    BackorderFilled,
    CancelRefused,
    CancelRequested,
    CarrierFailed,
    CreditHeld,
    CreditMemoPosted,
    Delivered,
    Event,
    InvalidEvent,
    Invoiced,
    LabelCreated,
    LineQuantity,
    OrderPlaced,
    ReleaseRejected,
    RetryRequested,
    ReturnAuthorized,
    ShipmentConfirmed,
    TimeoutFired,
    ValidationFailed,
)
from integration_core.orchestrator.exceptions import (
    EXCEPTION_SPECS,
    ExceptionRecord,
    ExceptionType,
)
from integration_core.orchestrator.states import (
    CountedLine,
    OrderState,
    PendingTimeout,
    ReturnRecord,
    ShipmentRecord,
    Status,
    System,
    waiting_on,
)
from integration_core.orchestrator.table import REQUESTS, Effect, Guard, Transition, rows_for

Commands = tuple[Command, ...]


def start(
    order: SalesOrder,
    now: float,
    config: OrchestratorConfig = DEFAULT_CONFIG,
    catalog: Catalog | None = None,
) -> tuple[OrderState, Commands]:
    """Create the state of a received order and handle its OrderPlaced in one step."""
    return handle(OrderState.new(order, catalog), OrderPlaced(order.order_id), now, config)


def handle(
    state: OrderState,
    event: Event,
    now: float,
    config: OrchestratorConfig = DEFAULT_CONFIG,
) -> tuple[OrderState, Commands]:
    rows = rows_for(state.status, event.kind)
    if event.order_id != state.order_id:
        raise InvalidEvent(
            "order_id", f"event for order {event.order_id!r} sent to {state.order_id!r}"
        )
    applied = _apply(state, event)
    if applied is None:
        return state, ()
    row = next(r for r in rows if r.guard is None or GUARDS[r.guard](applied, config))
    return _enter(state, applied, row, _Ctx(state, event, now, config))


# --- guards ------------------------------------------------------------------------------------

GUARDS: dict[Guard, Callable[[OrderState, OrchestratorConfig], bool]] = {
    Guard.ATTEMPTS_LEFT: lambda s, cfg: s.attempts < cfg.max_attempts,
    Guard.FULLY_ALLOCATED: lambda s, cfg: s.fully_allocated,
    Guard.SERVICE_LEFT: lambda s, cfg: _next_service(s, cfg) is not None,
    Guard.ALL_SHIPPED: lambda s, cfg: s.fully_shipped,
    Guard.COMPLETE: lambda s, cfg: s.complete,
}


def _next_service(state: OrderState, config: OrchestratorConfig) -> str | None:
    return next((s for s in config.carrier_services if s not in state.failed_services), None)


# --- applying an event's data ------------------------------------------------------------------


def _apply(state: OrderState, event: Event) -> OrderState | None:
    """The state with the event's data recorded, or None when the event changes nothing."""
    match event:
        case TimeoutFired(timeout_id=timeout_id):
            pending = state.pending_timeout
            if pending is None or pending.timeout_id != timeout_id:
                return None  # a timer the driver could not cancel in time
            return replace(state, pending_timeout=None)
        case Allocated(lines=lines) | BackorderFilled(lines=lines):
            return _allocate(state, lines)
        case ShipmentConfirmed(shipment=shipment):
            if shipment.shipment_id in state.shipment_ids:
                return None
            return _count_shipment(state, event)
        case Invoiced(shipment_id=shipment_id, invoice_id=invoice_id):
            record = _known_shipment(state, shipment_id)
            if record.invoiced:
                return None
            if not record.billable:
                raise InvalidEvent(
                    "shipment_id", f"shipment {shipment_id!r} counted nothing to invoice"
                )
            for part in record.counted:
                line = state.line(part.line_no)
                assert line is not None  # counted lines exist by construction
                state = state.with_line(replace(line, invoiced=line.invoiced + part.quantity_base))
            return state.with_shipment(replace(record, invoice_id=invoice_id))
        case Delivered(shipment_id=shipment_id):
            record = _known_shipment(state, shipment_id)
            if record.delivered:
                return None
            return state.with_shipment(replace(record, delivered=True))
        case CarrierFailed():
            failed = state.carrier_service
            if failed is None or failed in state.failed_services:
                return state
            return replace(state, failed_services=(*state.failed_services, failed))
        case LabelCreated(tracking=tracking):
            return replace(state, tracking=tracking)
        case RetryRequested() if state.status is Status.LABELLING:
            return replace(state, failed_services=())  # the operator starts the services over
        case ReturnAuthorized(rma=rma):
            if any(r.rma_id == rma.rma_id for r in state.returns):
                return None
            return _authorize_return(state, event)
        case CreditMemoPosted(rma_id=rma_id):
            due = _pending_return(state)
            if due is None or due.rma_id != rma_id:
                raise InvalidEvent("rma_id", f"no credit memo pending for return {rma_id!r}")
            returns = tuple(replace(r, credited=True) if r is due else r for r in state.returns)
            return replace(state, returns=returns)
        case _:
            return state


def _allocate(state: OrderState, lines: Iterable[LineQuantity]) -> OrderState:
    for i, part in enumerate(lines):
        line = state.line(part.line_no)
        if line is None:
            raise InvalidEvent(f"lines[{i}].line_no", "no such order line", part.line_no)
        if not 0 <= part.quantity_base <= line.outstanding:
            raise InvalidEvent(
                f"lines[{i}].quantity_base",
                f"line {line.line_no} has {line.outstanding} to allocate",
                part.quantity_base,
            )
        state = state.with_line(replace(line, allocated=line.allocated + part.quantity_base))
    return state


def _count_shipment(state: OrderState, event: ShipmentConfirmed) -> OrderState:
    shipment = event.shipment
    counted: list[CountedLine] = []
    excess: list[CountedLine] = []
    for i, sl in enumerate(shipment.lines):
        line = state.line(sl.order_line_no)
        if line is None:
            raise InvalidEvent(
                f"shipment.lines[{i}].order_line_no", "no such order line", sl.order_line_no
            )
        # A substituted SKU counts against the line it was shipped for.
        fits = min(sl.quantity_base, line.unshipped)
        if fits:
            counted.append(CountedLine(line.line_no, sl.sku, fits))
            state = state.with_line(replace(line, shipped=line.shipped + fits))
        if sl.quantity_base > fits:
            excess.append(CountedLine(line.line_no, sl.sku, sl.quantity_base - fits))
    record = ShipmentRecord(
        shipment_id=shipment.shipment_id,
        counted=tuple(counted),
        excess=tuple(excess),
        tracking=shipment.tracking,
    )
    return replace(state, shipments=(*state.shipments, record))


def _known_shipment(state: OrderState, shipment_id: str) -> ShipmentRecord:
    record = state.shipment(shipment_id)
    if record is None:
        raise InvalidEvent("shipment_id", f"no shipment {shipment_id!r} on this order")
    return record


def _authorize_return(state: OrderState, event: ReturnAuthorized) -> OrderState:
    """Map each returned SKU onto the lines that shipped it, first line first."""
    left: dict[tuple[int, str], int] = {}
    for record in state.shipments:
        for part in record.counted:
            key = (part.line_no, part.sku)
            left[key] = left.get(key, 0) + part.quantity_base
    for done in state.returns:
        for part in done.lines:
            left[(part.line_no, part.sku)] -= part.quantity_base
    mapped: list[CountedLine] = []
    for i, rl in enumerate(event.rma.lines):
        wanted = rl.quantity_base
        for (line_no, sku), available in sorted(left.items()):
            if sku != rl.sku or available <= 0 or wanted == 0:
                continue
            take = min(wanted, available)
            left[(line_no, sku)] -= take
            wanted -= take
            mapped.append(CountedLine(line_no, sku, take))
        if wanted:
            raise InvalidEvent(
                f"rma.lines[{i}].quantity_base",
                f"returns {rl.quantity_base} of {rl.sku!r}, more than shipped and not returned",
                rl.quantity_base,
            )
    for part in mapped:
        line = state.line(part.line_no)
        assert line is not None
        state = state.with_line(replace(line, returned=line.returned + part.quantity_base))
    authorized = ReturnRecord(rma_id=event.rma.rma_id, lines=tuple(mapped))
    return replace(state, returns=(*state.returns, authorized))


def _pending_return(state: OrderState) -> ReturnRecord | None:
    return next((r for r in state.returns if not r.credited), None)


# --- entering the next state -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ctx:
    before: OrderState
    event: Event
    now: float
    config: OrchestratorConfig


def _enter(
    before: OrderState, applied: OrderState, row: Transition, ctx: _Ctx
) -> tuple[OrderState, Commands]:
    commands: list[Command] = []
    moves = row.next is not before.status
    open_exceptions = applied.open_exceptions
    if moves or row.resolves:  # the wait these exceptions were about is over
        commands.extend(CloseException(before.order_id, x, ctx.now) for x in open_exceptions)
        open_exceptions = ()
    pending = applied.pending_timeout
    arms = any(fx.command is CommandKind.SCHEDULE_TIMEOUT for fx in row.effects)
    # A blocking exception hands the order to a person: the partner's timer is moot, and
    # left armed it would resend a request the exception says cannot be made (no carrier
    # service left, say).
    blocks = any(
        fx.command is CommandKind.OPEN_EXCEPTION and fx.exception is not None
        and EXCEPTION_SPECS[fx.exception].blocking
        for fx in row.effects
    )
    if (moves or blocks) and pending is not None and not arms:
        commands.append(CancelTimeout(before.order_id, pending.timeout_id))
        pending = None
    requests = any(fx.command in REQUESTS for fx in row.effects)
    if row.retry:
        attempts = before.attempts + 1
    elif requests:
        attempts = 1
    else:
        attempts = before.attempts if not moves else 0
    state = replace(
        applied,
        status=row.next,
        open_exceptions=open_exceptions,
        pending_timeout=pending,
        attempts=attempts,
    )
    for fx in row.effects:
        state, built = _BUILDERS[fx.command](state, fx, ctx)
        commands.extend(built)
    return state, tuple(commands)


Built = tuple[OrderState, list[Command]]


def _requested(state: OrderState, quantity: Callable[[int, int], int]) -> tuple[LineRequest, ...]:
    lines = (
        LineRequest(ln.line_no, ln.sku, quantity(ln.ordered, ln.allocated)) for ln in state.lines
    )
    return tuple(ln for ln in lines if ln.quantity_base > 0)


def _release_id(state: OrderState) -> str:
    return f"{state.order_id}/release"  # stable: the WMS dedupes resends


def _validate(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    return state, [ValidateOrder(state.order_id, state.attempts)]


def _credit_check(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    order = state.order
    return state, [
        RequestCreditCheck(state.order_id, order.customer_id, order.value, state.attempts)
    ]


def _reserve(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    lines = _requested(state, lambda ordered, allocated: ordered - allocated)
    return state, [ReserveInventory(state.order_id, lines, state.order.ship_from, state.attempts)]


def _release(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    lines = _requested(state, lambda ordered, allocated: ordered)
    command = ReleaseToWms(
        state.order_id, _release_id(state), lines, state.order.ship_from, state.attempts
    )
    return state, [command]


def _label(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    service = _next_service(state, ctx.config)
    assert service is not None, "rows that book a label are guarded by SERVICE_LEFT"
    state = replace(state, carrier_service=service)
    return state, [RequestLabel(state.order_id, service, state.attempts)]


def _invoice(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    record = _shipment_of(state, ctx.event)
    if not record.counted:
        return state, []
    lines = tuple(_priced(state, part) for part in record.counted)
    return state, [PostInvoice(state.order_id, record.shipment_id, state.order.customer_id, lines)]


def _shipment_of(state: OrderState, event: Event) -> ShipmentRecord:
    assert isinstance(event, ShipmentConfirmed)
    record = state.shipment(event.shipment.shipment_id)
    assert record is not None
    return record


def _priced(state: OrderState, part: CountedLine) -> InvoiceLine:
    line = state.line(part.line_no)
    assert line is not None
    return InvoiceLine(sku=part.sku, quantity_base=part.quantity_base, unit_price=line.unit_price)


def _notify(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    assert fx.notice is not None
    detail = _NOTICE_DETAIL[fx.notice](state, ctx)
    return state, [NotifyCustomer(state.order_id, state.order.customer_id, fx.notice, detail)]


def _open(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    assert fx.exception is not None
    kind = fx.exception
    if kind is ExceptionType.OVER_SHIPMENT and not _shipment_of(state, ctx.event).excess:
        return state, []
    spec = EXCEPTION_SPECS[kind]
    owner = spec.owner or waiting_on(ctx.before) or System.INTEGRATION
    seq = state.exception_seq + 1
    record = ExceptionRecord(
        exception_id=f"{state.order_id}/exc-{seq}",
        type=kind,
        severity=spec.severity,
        owner=owner,
        order_id=state.order_id,
        opened_at=ctx.now,
        detail=_exception_detail(kind, state, owner, ctx),
    )
    opened = state.open_exceptions
    if spec.blocking:  # the order now waits on a person; informational ones are not tracked
        opened = (*opened, record.exception_id)
    state = replace(state, exception_seq=seq, open_exceptions=opened)
    return state, [OpenException(record)]


def _free(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    lines = _requested(state, lambda ordered, allocated: allocated)
    return state, [ReleaseReservation(state.order_id, lines)]


def _cancel_release(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    return state, [CancelRelease(state.order_id, _release_id(state), state.attempts)]


def _timer(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    seq = state.timeout_seq + 1
    due_at = ctx.now + ctx.config.timeout(state.status)
    timer = PendingTimeout(f"{state.order_id}/timer-{seq}", due_at)
    state = replace(state, timeout_seq=seq, pending_timeout=timer)
    return state, [ScheduleTimeout(state.order_id, timer.timeout_id, timer.due_at, state.status)]


def _credit_memo(state: OrderState, fx: Effect, ctx: _Ctx) -> Built:
    pending = _pending_return(state)
    assert pending is not None
    lines = tuple(_priced(state, part) for part in pending.lines)
    command = PostCreditMemo(
        state.order_id, pending.rma_id, state.order.customer_id, lines, state.attempts
    )
    return state, [command]


_BUILDERS: dict[CommandKind, Callable[[OrderState, Effect, _Ctx], Built]] = {
    CommandKind.VALIDATE_ORDER: _validate,
    CommandKind.REQUEST_CREDIT_CHECK: _credit_check,
    CommandKind.RESERVE_INVENTORY: _reserve,
    CommandKind.RELEASE_TO_WMS: _release,
    CommandKind.REQUEST_LABEL: _label,
    CommandKind.POST_INVOICE: _invoice,
    CommandKind.NOTIFY_CUSTOMER: _notify,
    CommandKind.OPEN_EXCEPTION: _open,
    CommandKind.RELEASE_RESERVATION: _free,
    CommandKind.CANCEL_RELEASE: _cancel_release,
    CommandKind.SCHEDULE_TIMEOUT: _timer,
    CommandKind.POST_CREDIT_MEMO: _credit_memo,
}


# --- human-readable details --------------------------------------------------------------------


def _reason(event: Event) -> str:
    if isinstance(
        event,
        ValidationFailed
        | CreditHeld
        | ReleaseRejected
        | CarrierFailed
        | CancelRequested
        | CancelRefused,
    ):
        return event.reason
    return ""


def _exception_detail(kind: ExceptionType, state: OrderState, owner: System, ctx: _Ctx) -> str:
    before = ctx.before
    match kind:
        case ExceptionType.NO_RESPONSE:
            return (
                f"no answer from {owner.value} after {before.attempts} attempts "
                f"while {before.status.value}"
            )
        case ExceptionType.OVERDUE:
            return f"nothing from {owner.value} in time while {before.status.value}"
        case ExceptionType.CARRIER_FAILED:
            failed = ", ".join(state.failed_services)
            return f"every carrier service failed ({failed}): {_reason(ctx.event)}".rstrip(": ")
        case ExceptionType.OVER_SHIPMENT:
            record = _shipment_of(state, ctx.event)
            parts = ", ".join(f"line {p.line_no} {p.sku} +{p.quantity_base}" for p in record.excess)
            return f"shipment {record.shipment_id} exceeds the order, not counted: {parts}"
        case _:
            return _reason(ctx.event)


def _shipped_detail(state: OrderState, ctx: _Ctx) -> str:
    record = _shipment_of(state, ctx.event)
    text = f"shipment {record.shipment_id}"
    if record.tracking:
        text += f", tracking {record.tracking}"
    subs = [
        f"{p.sku} instead of {line.sku} on line {p.line_no}"
        for p in record.counted
        if (line := state.line(p.line_no)) is not None and line.sku != p.sku
    ]
    if subs:
        text += "; substituted " + ", ".join(subs)
    return text


def _invoiced_detail(state: OrderState, ctx: _Ctx) -> str:
    assert isinstance(ctx.event, Invoiced)
    return f"invoice {ctx.event.invoice_id} for shipment {ctx.event.shipment_id}"


def _refunded_detail(state: OrderState, ctx: _Ctx) -> str:
    assert isinstance(ctx.event, CreditMemoPosted)
    return f"credit memo {ctx.event.credit_memo_id} for return {ctx.event.rma_id}"


def _backordered_detail(state: OrderState, ctx: _Ctx) -> str:
    parts = [
        f"line {ln.line_no} {ln.sku} x{ln.backordered}" for ln in state.lines if ln.outstanding
    ]
    return "backordered: " + ", ".join(parts)


_NOTICE_DETAIL: dict[Notice, Callable[[OrderState, _Ctx], str]] = {
    Notice.REJECTED: lambda s, ctx: _reason(ctx.event),
    Notice.BACKORDERED: _backordered_detail,
    Notice.SHIPPED: _shipped_detail,
    Notice.INVOICED: _invoiced_detail,
    Notice.CANCELLED: lambda s, ctx: _reason(ctx.event),
    Notice.CANCEL_REFUSED: lambda s, ctx: _reason(ctx.event),
    Notice.REFUNDED: _refunded_detail,
}
