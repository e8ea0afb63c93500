"""Business exceptions: records a person must look at, and the queue that holds them.

Not Python exceptions: an order on credit hold is not an error of the program. The saga opens
and closes them with commands (OpenException, CloseException); the driver keeps the queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple

from integration_core.errors import NotFound
from integration_core.orchestrator.states import System


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class ExceptionType(StrEnum):
    VALIDATION_FAILED = "validation_failed"
    CREDIT_HOLD = "credit_hold"
    RELEASE_REJECTED = "release_rejected"
    NO_RESPONSE = "no_response"
    """A request went unanswered after the configured number of attempts."""
    OVERDUE = "overdue"
    """A partner is silent past the allowed time and there is nothing to resend."""
    CARRIER_FAILED = "carrier_failed"
    """Every configured carrier service failed."""
    OVER_SHIPMENT = "over_shipment"


class ExceptionSpec(NamedTuple):
    severity: Severity
    owner: System | None
    """Fixed owner; None means the party the order was waiting on."""
    blocking: bool
    """The order cannot progress until it is dealt with (listed in `OrderState.open_exceptions`)."""


EXCEPTION_SPECS: dict[ExceptionType, ExceptionSpec] = {
    # The order is rejected (terminal); the shop's payload needs a look, the order does not wait.
    ExceptionType.VALIDATION_FAILED: ExceptionSpec(Severity.LOW, System.SHOP, blocking=False),
    ExceptionType.CREDIT_HOLD: ExceptionSpec(Severity.MEDIUM, System.ERP, blocking=True),
    ExceptionType.RELEASE_REJECTED: ExceptionSpec(Severity.HIGH, System.WMS, blocking=True),
    ExceptionType.NO_RESPONSE: ExceptionSpec(Severity.HIGH, None, blocking=True),
    ExceptionType.OVERDUE: ExceptionSpec(Severity.MEDIUM, None, blocking=True),
    ExceptionType.CARRIER_FAILED: ExceptionSpec(Severity.HIGH, System.CARRIER, blocking=True),
    # Goods already left: finance and the warehouse must sort out the excess, the order goes on.
    ExceptionType.OVER_SHIPMENT: ExceptionSpec(Severity.MEDIUM, System.WMS, blocking=False),
}


@dataclass(frozen=True, slots=True)
class ExceptionRecord:
    exception_id: str
    type: ExceptionType
    severity: Severity
    owner: System
    order_id: str
    opened_at: float
    detail: str = ""
    closed_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def age(self, now: float) -> float:
        return now - self.opened_at


class ExceptionQueue:
    """Open and closed exception records, listed for the people who work them.

    Opening an id twice keeps the first record (commands may be redelivered); closing twice
    keeps the first close time.
    """

    def __init__(self) -> None:
        self._records: dict[str, ExceptionRecord] = {}

    def open(self, record: ExceptionRecord) -> ExceptionRecord:
        return self._records.setdefault(record.exception_id, record)

    def close(self, exception_id: str, at: float) -> ExceptionRecord:
        record = self.get(exception_id)
        if record.is_open:
            record = replace(record, closed_at=at)
            self._records[exception_id] = record
        return record

    def get(self, exception_id: str) -> ExceptionRecord:
        try:
            return self._records[exception_id]
        except KeyError:
            raise NotFound(f"no exception {exception_id!r}") from None

    def by_age(self, *, order_id: str | None = None) -> list[ExceptionRecord]:
        """Open records, oldest first."""
        return sorted(self._open(order_id), key=lambda r: (r.opened_at, r.exception_id))

    def by_severity(self, *, order_id: str | None = None) -> list[ExceptionRecord]:
        """Open records, most severe first, oldest first within a severity."""
        return sorted(
            self._open(order_id),
            key=lambda r: (-r.severity.rank, r.opened_at, r.exception_id),
        )

    def closed(self) -> list[ExceptionRecord]:
        return [r for r in self._records.values() if not r.is_open]

    def _open(self, order_id: str | None) -> Iterator[ExceptionRecord]:
        return (
            r
            for r in self._records.values()
            if r.is_open and (order_id is None or r.order_id == order_id)
        )

    def __len__(self) -> int:
        """Number of open records."""
        return sum(1 for r in self._records.values() if r.is_open)

    def __contains__(self, exception_id: object) -> bool:
        return exception_id in self._records
