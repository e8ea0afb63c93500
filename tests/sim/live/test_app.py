"""The twins over HTTP, through the core's own client (`Partners`): the contract both sides
of the partner port rely on, including how failures are classified for the bus."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from integration_core.engine.partners import (
    OPERATIONS,
    CreditAnswer,
    CreditCheck,
    InvoiceLine,
    InvoiceRequest,
    Posting,
    Release,
    ReleaseLine,
)
from integration_core.errors import PayloadError, TransientError
from integration_core.service.partners import Fault, Partners
from sim.live import create_twins_app

pytestmark = pytest.mark.anyio
KEY = "partner-key-for-tests-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def partners(db: Path, key: str = KEY) -> AsyncIterator[Partners]:
    app = create_twins_app(db, KEY)
    p = Partners("http://twins/erp", "http://twins/wms", key,
                 transport=httpx.ASGITransport(app=app))
    try:
        yield p
    finally:
        await p.close()
        app.state.close()


def posting(mid: str, delta: int = 5, location: str = "A") -> Posting:
    return Posting(message_id=f"inventory.movement:{mid}", movement_id=mid, sku="SKU-1",
                   location=location, delta=delta)


async def test_a_posting_is_booked_once_however_often_it_comes(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db") as p:
        assert await p.post_movements([posting("m1"), posting("m2", -2)]) == ["applied"] * 2
        assert await p.post_movements([posting("m1"), posting("m3", 1, "B")]) \
            == ["duplicate", "applied"]
        stock = await p.stock(None, ["m3", "m9"])
        assert stock.rows == [("SKU-1", "A", None, 3), ("SKU-1", "B", None, 1)]
        assert stock.booked == ["m3"]
        answer = await p.applied(["m1", "m2", "m9"])
        assert answer.counts == {"m1": 1, "m2": 1, "m9": 0}
        assert answer.received == {"m1": 2, "m2": 1, "m9": 0}


async def test_bookings_outlive_the_twins(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db") as p:
        await p.post_movements([posting("m1")])
    async with partners(tmp_path / "t.db") as p:
        assert await p.post_movements([posting("m1")]) == ["duplicate"]
        assert (await p.stock("SKU-1", [])).rows == [("SKU-1", "A", None, 5)]


async def test_orders_side_calls_are_idempotent(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db") as p:
        credit = await p.credit_check(CreditCheck(order_id="O1", customer_id="C", amount="9"))
        assert credit.approved
        inv = InvoiceRequest(shipment_id="S1", order_id="O1",
                             lines=[InvoiceLine(sku="SKU-1", quantity_base=2, unit_price="4.5")])
        assert (await p.invoice(inv)).invoice_id == (await p.invoice(inv)).invoice_id == "INV-S1"
        rel = Release(order_id="O1", lines=[ReleaseLine(line_no=1, sku="SKU-1",
                                                        quantity_base=2)])
        assert (await p.release(rel)).accepted and (await p.release(rel)).accepted


async def test_outbox_operations_are_performed_from_the_ports_table(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db") as p:
        answer = await p.perform("credit_check", {"order_id": "O2", "customer_id": "C",
                                                  "amount": "3"})
        assert CreditAnswer.model_validate(answer).approved
        with pytest.raises(PayloadError) as unknown:
            await p.perform("teleport", {})
        assert unknown.value.field == "op"
        with pytest.raises(PayloadError) as bad:
            await p.perform("release", {"order_id": "O2"})  # no lines
        assert bad.value.field == "body" and "lines" in str(bad.value)
        # The cancellation and the credit memo go to their twins like the rest.
        cancel = await p.perform("cancel_release", {"order_id": "O2"})
        assert cancel == {"cancelled": True, "reason": ""}
        memo = await p.perform("credit_memo", {"rma_id": "R2", "order_id": "O2",
                                               "customer_id": "C", "lines": []})
        assert memo == {"credit_memo_id": "CM-R2"}
    assert set(OPERATIONS) == {"credit_check", "release", "invoice", "cancel_release",
                               "credit_memo"}


async def test_down_is_retryable_and_reads_are_refused_too(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db") as p:
        state = await p.set_fault("erp", Fault(mode="down"))
        assert (state.system, state.mode) == ("erp", "down")
        with pytest.raises(TransientError, match="503"):
            await p.post_movements([posting("m1")])
        with pytest.raises(TransientError):
            await p.stock(None, [])
        # The auditor's window stays open, and the WMS is not affected.
        assert (await p.applied(["m1"])).counts == {"m1": 0}
        assert (await p.release(Release(order_id="O", lines=[]))).accepted
        assert (await p.fault("erp")).refused == 2


async def test_a_lost_answer_means_the_work_was_done(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db") as p:
        await p.set_fault("erp", Fault(mode="flaky", failure_rate=1.0))
        outcomes = []
        for i in range(20):
            try:
                await p.post_movements([posting(f"m{i}")])
                outcomes.append("ok")
            except TransientError:
                outcomes.append("failed")
        assert outcomes == ["failed"] * 20
        lost = (await p.fault("erp")).lost_answers
        booked = sum((await p.applied([f"m{i}" for i in range(20)])).counts.values())
        assert 0 < lost == booked < 20


async def test_slow_waits_before_answering(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db") as p:
        await p.set_fault("wms", Fault(mode="slow", latency_s=0.2))
        t0 = time.monotonic()
        assert (await p.release(Release(order_id="O", lines=[]))).accepted
        assert time.monotonic() - t0 >= 0.2
        assert (await p.fault("wms")).mode == "slow"


async def test_a_wrong_key_or_a_bad_body_is_a_permanent_error(tmp_path: Path) -> None:
    async with partners(tmp_path / "t.db", key="not-the-key-0123456789") as p:
        with pytest.raises(PayloadError, match="401"):
            await p.post_movements([posting("m1")])
    async with partners(tmp_path / "t.db") as p:
        r = await p.http.post("http://twins/erp/postings", json={"postings": [{"sku": 1}]})
        assert r.status_code == 422


async def test_nobody_listening_is_retryable() -> None:
    p = Partners("http://127.0.0.1:9/erp", "http://127.0.0.1:9/wms", KEY, timeout_s=1.0)
    try:
        with pytest.raises(TransientError, match="no answer"):
            await p.stock(None, [])
    finally:
        await p.close()
