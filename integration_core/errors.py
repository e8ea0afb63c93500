"""Exception tree. Each error carries an HTTP status hint so adapters can map faults to codes.

4xx hints mean the caller (a partner system) is at fault; 5xx hints mean we are.
"""

from __future__ import annotations


class InteropError(Exception):
    """Base of every error raised by the integration core.

    `field` names the field at fault, when one is (``"order_id"``, ``"lines[0].sku"``); it
    travels as data, so an adapter never parses it back out of the text. The text still
    reads ``"field: message"``, for logs and dead letters' causes."""

    status_hint: int = 500
    retryable: bool = True
    field: str | None = None
    message: str = ""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class PayloadError(InteropError):
    """Input that can never be processed as sent: retrying it cannot help."""

    status_hint = 422
    retryable = False
    field: str

    def __init__(self, field: str, message: str, value: object = None) -> None:
        self.value = value
        super().__init__(message, field=field)


class UnknownSku(PayloadError):
    """A SKU absent from the item master."""

    def __init__(self, sku: str, field: str = "sku") -> None:
        super().__init__(field, f"unknown SKU {sku!r}", sku)


class UnknownUnit(PayloadError):
    """A unit of measure the item has no conversion for."""

    def __init__(self, sku: str, unit: str, known: list[str], field: str = "unit") -> None:
        super().__init__(
            field, f"unknown unit {unit!r} for SKU {sku!r}; known units: {', '.join(known)}", unit
        )


class IllegalTransition(InteropError):
    """An event the workflow's transition table does not allow in the current state."""

    status_hint = 409
    retryable = False

    def __init__(self, state: str, event: str) -> None:
        self.state = state
        self.event = event
        super().__init__(f"event {event!r} is not allowed in state {state!r}")


class DuplicateMessage(InteropError):
    """A message id already seen; informational, the bus reports rather than raises it."""

    status_hint = 200
    retryable = False


class TransientError(InteropError):
    """A partner is down, slow or rate limiting: retrying later may succeed."""

    status_hint = 503
    retryable = True


class StorageError(InteropError):
    """Our own store failed (disk full, I/O error, locked): an outage, never a loss. Nothing
    of the failed transaction was kept; the caller may retry once the store writes again."""

    status_hint = 503
    retryable = True


class NotFound(InteropError):
    """A referenced record (order, dead letter, shipment) does not exist: `field` names the
    id that referenced it, e.g. ``NotFound(f"no order {order_id!r}", field="order_id")``."""

    status_hint = 404
    retryable = False
