"""The exception tree: the field at fault is an attribute, and the text still names it."""

from __future__ import annotations

import pytest

from integration_core.errors import (
    InteropError,
    NotFound,
    PayloadError,
    TransientError,
    UnknownSku,
)


def test_the_field_at_fault_travels_as_an_attribute() -> None:
    exc = NotFound("no order 'X'", field="order_id")
    assert exc.field == "order_id" and exc.message == "no order 'X'"
    assert str(exc) == "order_id: no order 'X'"  # logs and dead letters' causes read so
    assert exc.status_hint == 404 and not exc.retryable


@pytest.mark.parametrize("exc", [NotFound("no exception 'x-1'"), TransientError("ERP down"),
                                 InteropError("failed")])
def test_without_a_field_the_text_is_the_message(exc: InteropError) -> None:
    assert exc.field is None
    assert str(exc) == exc.message


def test_payload_errors_name_their_field_first() -> None:
    exc = PayloadError("lines[0].quantity_base", "must be positive", -1)
    assert (exc.field, exc.message, exc.value) == ("lines[0].quantity_base",
                                                   "must be positive", -1)
    assert str(exc) == "lines[0].quantity_base: must be positive"
    sku = UnknownSku("X", field="lines[1].sku")
    assert sku.field == "lines[1].sku" and str(sku) == "lines[1].sku: unknown SKU 'X'"
