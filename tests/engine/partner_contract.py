"""The contract every adapter of the partner port must meet. Subclass `PartnerContract` per
adapter (the `tests/bus/contract.py` pattern).

A harness drives one adapter against the same partner business (the live ERP and WMS twins'
logic, on files of their own), so what differs is only the adapter: how a call travels, how
it times out, how an answer gets lost. `perform` returns (answer, error) once the adapter
has heard; `mode` switches the partner: ``up``, ``down`` (refuses everything), ``lose`` (does
the work, but the answer never reaches the caller).
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

from integration_core.engine.partners import OPERATIONS
from integration_core.errors import PayloadError, TransientError

Mode = Literal["up", "down", "lose"]

CREDIT = {"order_id": "O-1", "customer_id": "C-1", "amount": "25.00"}
RELEASE = {"order_id": "O-1", "lines": [{"line_no": 1, "sku": "SKU-00001",
                                         "quantity_base": 3}]}
INVOICE = {"shipment_id": "S-1", "order_id": "O-1",
           "lines": [{"sku": "SKU-00001", "quantity_base": 3, "unit_price": "2.50"}]}
CANCEL = {"order_id": "O-1", "reason": "changed my mind"}
CREDIT_MEMO = {"rma_id": "RMA-1", "order_id": "O-1", "customer_id": "C-1",
               "lines": [{"sku": "SKU-00001", "quantity_base": 1, "unit_price": "2.50"}]}
POSTING = {"message_id": "inventory.movement:m1", "movement_id": "m1", "sku": "SKU-00001",
           "location": "A-01", "lot": None, "delta": 5}


class PartnerHarness:
    def perform(self, op: str, body: dict[str, Any]) -> tuple[Any, BaseException | None]:
        raise NotImplementedError

    def post(self, posting: dict[str, Any]) -> tuple[Any, BaseException | None]:
        raise NotImplementedError

    def mode(self, system: str, mode: Mode) -> None:
        raise NotImplementedError

    def booked(self, movement_id: str) -> int:
        """Times the ERP booked the movement."""
        raise NotImplementedError

    def released(self, order_id: str) -> bool:
        raise NotImplementedError

    def invoices(self) -> int:
        raise NotImplementedError

    def credit_memos(self) -> int:
        raise NotImplementedError


class PartnerContract:
    @pytest.fixture
    def partners(self) -> PartnerHarness:
        raise NotImplementedError

    @pytest.mark.parametrize(("op", "body"), [("credit_check", CREDIT), ("release", RELEASE),
                                              ("invoice", INVOICE), ("cancel_release", CANCEL),
                                              ("credit_memo", CREDIT_MEMO)])
    def test_an_up_partner_answers_with_the_operations_record(
            self, partners: PartnerHarness, op: str, body: dict[str, Any]) -> None:
        answer, error = partners.perform(op, body)
        assert error is None
        assert OPERATIONS[op].answer.model_validate(answer) is not None
        assert answer == {"credit_check": {"approved": True, "reason": ""},
                          "release": {"accepted": True, "reason": ""},
                          "invoice": {"invoice_id": "INV-S-1"},
                          "cancel_release": {"cancelled": True, "reason": ""},
                          "credit_memo": {"credit_memo_id": "CM-RMA-1"}}[op]

    def test_every_operation_of_the_port_is_served(self, partners: PartnerHarness) -> None:
        bodies: dict[str, dict[str, Any]] = {
            "credit_check": CREDIT, "release": RELEASE, "invoice": INVOICE,
            "cancel_release": CANCEL, "credit_memo": CREDIT_MEMO}
        assert bodies.keys() == OPERATIONS.keys()
        for op, body in bodies.items():
            assert partners.perform(op, body)[1] is None, op

    def test_a_credit_memo_made_again_is_one_memo(self, partners: PartnerHarness) -> None:
        partners.mode("erp", "lose")
        assert isinstance(partners.perform("credit_memo", CREDIT_MEMO)[1], TransientError)
        partners.mode("erp", "up")
        assert partners.perform("credit_memo", CREDIT_MEMO) == (
            {"credit_memo_id": "CM-RMA-1"}, None)
        assert partners.credit_memos() == 1

    def test_a_release_after_its_cancellation_is_refused(self, partners: PartnerHarness
                                                         ) -> None:
        assert partners.perform("cancel_release", CANCEL) == (
            {"cancelled": True, "reason": ""}, None)
        answer, error = partners.perform("release", RELEASE)
        assert error is None and answer["accepted"] is False
        assert not partners.released("O-1")

    def test_a_down_partner_is_a_transient_error_and_nothing_happened(
            self, partners: PartnerHarness) -> None:
        partners.mode("wms", "down")
        answer, error = partners.perform("release", RELEASE)
        assert answer is None and isinstance(error, TransientError)
        assert not partners.released("O-1")

    def test_a_lost_answer_is_transient_and_the_retry_applies_once(
            self, partners: PartnerHarness) -> None:
        partners.mode("erp", "lose")
        answer, error = partners.perform("invoice", INVOICE)
        assert answer is None and isinstance(error, TransientError)
        assert partners.invoices() == 1  # the work was done: the caller cannot tell
        partners.mode("erp", "up")
        answer, error = partners.perform("invoice", INVOICE)
        assert error is None and answer == {"invoice_id": "INV-S-1"}
        assert partners.invoices() == 1

    def test_a_release_made_again_is_one_release(self, partners: PartnerHarness) -> None:
        partners.mode("wms", "lose")
        assert isinstance(partners.perform("release", RELEASE)[1], TransientError)
        partners.mode("wms", "up")
        assert partners.perform("release", RELEASE) == ({"accepted": True, "reason": ""}, None)
        assert partners.released("O-1")

    def test_a_posting_delivered_twice_is_booked_once(self, partners: PartnerHarness) -> None:
        partners.mode("erp", "lose")
        assert isinstance(partners.post(POSTING)[1], TransientError)
        partners.mode("erp", "up")
        answer, error = partners.post(POSTING)
        assert error is None and answer in ("applied", "duplicate")
        assert partners.booked("m1") == 1

    def test_an_unknown_operation_is_refused_for_good(self, partners: PartnerHarness) -> None:
        answer, error = partners.perform("teleport", {})
        assert answer is None and isinstance(error, PayloadError)

    def test_a_request_the_port_does_not_know_is_refused_for_good(
            self, partners: PartnerHarness) -> None:
        answer, error = partners.perform("credit_check", {**CREDIT, "amount": {"x": 1}})
        assert answer is None and isinstance(error, PayloadError)
