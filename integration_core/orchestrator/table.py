"""The transition table: the single source of which (status, event) pairs are allowed, where
they lead and which commands they issue. `handle` interprets it; `to_mermaid` draws it.

An entry holds one row, or several rows told apart by guards on the order's data: the rows are
tried in order, each but the last has a guard, the last is the "else".

Two commands are housekeeping that `handle` derives instead of the table listing them:
CloseException (a row that changes status, or `resolves`, closes the blocking exceptions of
the wait it ends) and CancelTimeout (a row that changes status without arming a new timer
cancels the pending one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from integration_core.errors import IllegalTransition
from integration_core.orchestrator.commands import COMMAND_TYPES, CommandKind, Notice
from integration_core.orchestrator.events import EventKind
from integration_core.orchestrator.exceptions import ExceptionType
from integration_core.orchestrator.states import Status


class Guard(StrEnum):
    """Conditions on the order's data (evaluated after the event's data is applied)."""

    ATTEMPTS_LEFT = "attempts_left"
    FULLY_ALLOCATED = "fully_allocated"
    SERVICE_LEFT = "service_left"
    ALL_SHIPPED = "all_shipped"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class Effect:
    """A command a row issues; `exception` / `notice` say which, for the two generic ones.

    Effects whose payload would be empty are skipped: POST_INVOICE for a shipment that counted
    nothing, OPEN_EXCEPTION(over_shipment) when nothing exceeded the order.
    """

    command: CommandKind
    exception: ExceptionType | None = None
    notice: Notice | None = None

    @property
    def label(self) -> str:
        name = COMMAND_TYPES[self.command].__name__
        arg = self.exception or self.notice
        return f"{name}({arg.value})" if arg is not None else name


@dataclass(frozen=True, slots=True)
class Transition:
    next: Status
    effects: tuple[Effect, ...] = ()
    guard: Guard | None = None
    retry: bool = False
    """The row resends the outstanding request: it counts one more attempt."""
    resolves: bool = False
    """A row that stays in its status but ends the wait (progress, or an operator's retry)."""


#: Commands that ask a partner for an answer; their count per wait is `OrderState.attempts`.
REQUESTS: frozenset[CommandKind] = frozenset(
    {
        CommandKind.VALIDATE_ORDER,
        CommandKind.REQUEST_CREDIT_CHECK,
        CommandKind.RESERVE_INVENTORY,
        CommandKind.RELEASE_TO_WMS,
        CommandKind.REQUEST_LABEL,
        CommandKind.CANCEL_RELEASE,
        CommandKind.POST_CREDIT_MEMO,
    }
)
#: Housekeeping commands `handle` derives; the table never lists them.
DERIVED: frozenset[CommandKind] = frozenset(
    {CommandKind.CLOSE_EXCEPTION, CommandKind.CANCEL_TIMEOUT}
)

Row = tuple[Transition, ...]
Key = tuple[Status, EventKind]

S, E, C = Status, EventKind, CommandKind
_TIMER = Effect(C.SCHEDULE_TIMEOUT)


def _fx(*commands: CommandKind | Effect) -> tuple[Effect, ...]:
    return tuple(c if isinstance(c, Effect) else Effect(c) for c in commands)


def _open(kind: ExceptionType) -> Effect:
    return Effect(C.OPEN_EXCEPTION, exception=kind)


def _notify(notice: Notice) -> Effect:
    return Effect(C.NOTIFY_CUSTOMER, notice=notice)


def _waits_for(
    status: Status, request: CommandKind, exhausted: ExceptionType = ExceptionType.NO_RESPONSE
) -> dict[Key, Row]:
    """A request/response wait: resend on timeout until attempts run out, then an exception;
    an operator's RetryRequested resends and waits again."""
    return {
        (status, E.TIMEOUT_FIRED): (
            Transition(status, _fx(request, _TIMER), Guard.ATTEMPTS_LEFT, retry=True),
            Transition(status, _fx(_open(exhausted))),
        ),
        (status, E.RETRY_REQUESTED): (Transition(status, _fx(request, _TIMER), resolves=True),),
    }


def _build() -> dict[Key, Row]:
    t = Transition
    cancelled = _notify(Notice.CANCELLED)
    ship = _fx(C.POST_INVOICE, _open(ExceptionType.OVER_SHIPMENT), _notify(Notice.SHIPPED))
    rebook = (
        t(S.LABELLING, _fx(C.REQUEST_LABEL, _TIMER), Guard.SERVICE_LEFT, resolves=True),
        t(S.LABELLING, _fx(_open(ExceptionType.CARRIER_FAILED))),
    )
    release = t(S.RELEASING, _fx(C.RELEASE_TO_WMS, _TIMER), Guard.FULLY_ALLOCATED)
    return {
        (S.NEW, E.ORDER_PLACED): (t(S.VALIDATING, _fx(C.VALIDATE_ORDER, _TIMER)),),
        # validation and credit
        (S.VALIDATING, E.VALIDATED): (t(S.CREDIT_CHECK, _fx(C.REQUEST_CREDIT_CHECK, _TIMER)),),
        (S.VALIDATING, E.VALIDATION_FAILED): (
            t(S.REJECTED, _fx(_open(ExceptionType.VALIDATION_FAILED), _notify(Notice.REJECTED))),
        ),
        **_waits_for(S.VALIDATING, C.VALIDATE_ORDER),
        (S.VALIDATING, E.CANCEL_REQUESTED): (t(S.CANCELLED, _fx(cancelled)),),
        (S.CREDIT_CHECK, E.CREDIT_APPROVED): (t(S.ALLOCATING, _fx(C.RESERVE_INVENTORY, _TIMER)),),
        (S.CREDIT_CHECK, E.CREDIT_HELD): (t(S.CREDIT_HOLD, _fx(_open(ExceptionType.CREDIT_HOLD))),),
        **_waits_for(S.CREDIT_CHECK, C.REQUEST_CREDIT_CHECK),
        (S.CREDIT_CHECK, E.CANCEL_REQUESTED): (t(S.CANCELLED, _fx(cancelled)),),
        (S.CREDIT_HOLD, E.CREDIT_RELEASED): (t(S.ALLOCATING, _fx(C.RESERVE_INVENTORY, _TIMER)),),
        (S.CREDIT_HOLD, E.CANCEL_REQUESTED): (t(S.CANCELLED, _fx(cancelled)),),
        # allocation against available-to-promise; ship-complete: a partial waits as backorder
        (S.ALLOCATING, E.ALLOCATED): (
            release,
            t(S.BACKORDERED, _fx(_notify(Notice.BACKORDERED), _TIMER)),
        ),
        **_waits_for(S.ALLOCATING, C.RESERVE_INVENTORY),
        (S.ALLOCATING, E.CANCEL_REQUESTED): (
            t(S.CANCELLED, _fx(C.RELEASE_RESERVATION, cancelled)),
        ),
        (S.BACKORDERED, E.BACKORDER_FILLED): (
            release,
            t(S.BACKORDERED, _fx(_TIMER), resolves=True),
        ),
        **_waits_for(S.BACKORDERED, C.RESERVE_INVENTORY, ExceptionType.OVERDUE),
        (S.BACKORDERED, E.CANCEL_REQUESTED): (
            t(S.CANCELLED, _fx(C.RELEASE_RESERVATION, cancelled)),
        ),
        # release to the warehouse
        (S.RELEASING, E.RELEASE_ACCEPTED): (t(S.IN_FULFILMENT, _fx(_TIMER)),),
        (S.RELEASING, E.RELEASE_REJECTED): (
            t(S.RELEASE_REJECTED, _fx(_open(ExceptionType.RELEASE_REJECTED))),
        ),
        **_waits_for(S.RELEASING, C.RELEASE_TO_WMS),
        # The WMS may hold the release already (the answer may be in flight): cancel it there.
        (S.RELEASING, E.CANCEL_REQUESTED): (t(S.CANCELLING, _fx(C.CANCEL_RELEASE, _TIMER)),),
        (S.RELEASE_REJECTED, E.RETRY_REQUESTED): (t(S.RELEASING, _fx(C.RELEASE_TO_WMS, _TIMER)),),
        (S.RELEASE_REJECTED, E.CANCEL_REQUESTED): (
            t(S.CANCELLED, _fx(C.RELEASE_RESERVATION, cancelled)),
        ),
        # pick, pack, label; cancellation is possible until the order is packed
        (S.IN_FULFILMENT, E.PICKED): (t(S.IN_FULFILMENT, _fx(_TIMER), resolves=True),),
        (S.IN_FULFILMENT, E.PACKED): (t(S.LABELLING, _fx(C.REQUEST_LABEL, _TIMER)),),
        (S.IN_FULFILMENT, E.TIMEOUT_FIRED): (
            t(S.IN_FULFILMENT, _fx(_open(ExceptionType.OVERDUE))),
        ),
        (S.IN_FULFILMENT, E.RETRY_REQUESTED): (t(S.IN_FULFILMENT, _fx(_TIMER), resolves=True),),
        (S.IN_FULFILMENT, E.CANCEL_REQUESTED): (t(S.CANCELLING, _fx(C.CANCEL_RELEASE, _TIMER)),),
        (S.LABELLING, E.LABEL_CREATED): (t(S.SHIPPING, _fx(_TIMER)),),
        (S.LABELLING, E.CARRIER_FAILED): rebook,
        **_waits_for(S.LABELLING, C.REQUEST_LABEL),
        # shipment confirmations: one invoice per shipment; split shipments loop in SHIPPING
        (S.SHIPPING, E.SHIPMENT_CONFIRMED): (
            t(S.SHIPPED, (*ship, _TIMER), Guard.ALL_SHIPPED),
            t(S.SHIPPING, (*ship, _TIMER), resolves=True),
        ),
        (S.SHIPPING, E.CARRIER_FAILED): rebook,
        (S.SHIPPING, E.INVOICED): (t(S.SHIPPING, _fx(_notify(Notice.INVOICED))),),
        (S.SHIPPING, E.DELIVERED): (t(S.SHIPPING),),
        (S.SHIPPING, E.TIMEOUT_FIRED): (t(S.SHIPPING, _fx(_open(ExceptionType.OVERDUE))),),
        (S.SHIPPING, E.RETRY_REQUESTED): (t(S.SHIPPING, _fx(_TIMER), resolves=True),),
        # A confirmation after everything shipped can only be excess (or a duplicate).
        (S.SHIPPED, E.SHIPMENT_CONFIRMED): (t(S.SHIPPED, ship),),
        (S.SHIPPED, E.INVOICED): (
            t(S.COMPLETED, _fx(_notify(Notice.INVOICED)), Guard.COMPLETE),
            t(S.SHIPPED, _fx(_notify(Notice.INVOICED))),
        ),
        (S.SHIPPED, E.DELIVERED): (t(S.COMPLETED, (), Guard.COMPLETE), t(S.SHIPPED)),
        (S.SHIPPED, E.TIMEOUT_FIRED): (t(S.SHIPPED, _fx(_open(ExceptionType.OVERDUE))),),
        (S.SHIPPED, E.RETRY_REQUESTED): (t(S.SHIPPED, _fx(_TIMER), resolves=True),),
        # returns
        (S.COMPLETED, E.RETURN_AUTHORIZED): (t(S.RETURN_PENDING, _fx(C.POST_CREDIT_MEMO, _TIMER)),),
        (S.RETURN_PENDING, E.CREDIT_MEMO_POSTED): (t(S.COMPLETED, _fx(_notify(Notice.REFUNDED))),),
        **_waits_for(S.RETURN_PENDING, C.POST_CREDIT_MEMO),
        # compensation after release: the WMS cancels first, then the reservation is freed
        (S.CANCELLING, E.CANCEL_CONFIRMED): (
            t(S.CANCELLED, _fx(C.RELEASE_RESERVATION, cancelled)),
        ),
        (S.CANCELLING, E.CANCEL_REFUSED): (
            t(S.IN_FULFILMENT, _fx(_notify(Notice.CANCEL_REFUSED), _TIMER)),
        ),
        **_waits_for(S.CANCELLING, C.CANCEL_RELEASE),
    }


def _check(table: Mapping[Key, Row]) -> None:
    """Structural rules, checked at import so a bad edit fails loudly."""
    for (status, kind), rows in table.items():
        where = f"{status.value} x {kind.value}"
        if not rows:
            raise AssertionError(f"{where}: no rows")
        if rows[-1].guard is not None or any(r.guard is None for r in rows[:-1]):
            raise AssertionError(f"{where}: every row but the last needs a guard")
        for row in rows:
            for fx in row.effects:
                if fx.command in DERIVED:
                    raise AssertionError(f"{where}: {fx.command.value} is derived, not listed")
                if (fx.command is C.OPEN_EXCEPTION) != (fx.exception is not None):
                    raise AssertionError(f"{where}: exception type goes with OPEN_EXCEPTION")
                if (fx.command is C.NOTIFY_CUSTOMER) != (fx.notice is not None):
                    raise AssertionError(f"{where}: notice goes with NOTIFY_CUSTOMER")


TABLE: Mapping[Key, Row] = MappingProxyType(_build())
_check(TABLE)


def is_allowed(status: Status, kind: EventKind) -> bool:
    return (status, kind) in TABLE


def rows_for(status: Status, kind: EventKind) -> Row:
    """The rows of an allowed pair; IllegalTransition for a pair the table does not have."""
    try:
        return TABLE[(status, kind)]
    except KeyError:
        raise IllegalTransition(status.value, kind.value) from None


def allowed_events(status: Status) -> list[EventKind]:
    return [kind for kind in EventKind if (status, kind) in TABLE]
