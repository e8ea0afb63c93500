"""The partner-port contract, against the SimPy adapter: `SimPartners` calling the same
partner business (the live twins' ERP and WMS logic) across simulated links and endpoints.
Down is an endpoint outage; a lost answer is a partner slower than the caller's timeout (it
does the work after the caller gave up)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

from integration_core.engine.partners import Posting
from sim.distributions import Constant
from sim.live.erp import CREDIT_MEMOS, INVOICES, LiveErp
from sim.live.wms import LiveWms
from sim.network import Link
from sim.partners import POST, SimPartners
from sim.scenario import ApiConfig, LinkConfig
from sim.systems.endpoint import Endpoint
from tests.engine.partner_contract import Mode, PartnerContract, PartnerHarness

TIMEOUT_S = 5.0


class SimHarness(PartnerHarness):
    def __init__(self, tmp: Path) -> None:
        self.env = simpy.Environment()
        rng = np.random.default_rng(0)
        api = ApiConfig(workers=2, service_time_s=Constant(value=0.1))
        self.endpoints = {s: Endpoint(self.env, s, api, rng) for s in ("erp", "wms")}
        link = Link(self.env, "link", LinkConfig(latency_s=Constant(value=0.01)), rng)
        self.erp, self.wms = LiveErp(tmp / "erp.db"), LiveWms(tmp / "wms.db")
        self.partners = SimPartners(self.env, TIMEOUT_S)
        erp, wms = self.endpoints["erp"], self.endpoints["wms"]
        p = self.partners
        p.serve("credit_check", link, lambda _r: erp, self.erp.credit_check)
        p.serve("invoice", link, lambda _r: erp, self.erp.invoice)
        p.serve("release", link, lambda _r: wms, self.wms.release)
        p.serve("cancel_release", link, lambda _r: wms, self.wms.cancel_release)
        p.serve("credit_memo", link, lambda _r: erp, self.erp.credit_memo)
        p.serve(POST, link, lambda _r: erp,
                lambda posting: self.erp.post([Posting.model_validate(posting)])[0])

    def close(self) -> None:
        self.erp.close()
        self.wms.close()

    def _heard(self, start: Any) -> tuple[Any, BaseException | None]:
        heard: list[tuple[Any, BaseException | None]] = []
        start(lambda answer, error: heard.append((answer, error)))
        self.env.run()  # until nothing is left: a late answer's work is done too
        assert len(heard) == 1, heard  # the caller hears exactly once
        return heard[0]

    def perform(self, op: str, body: dict[str, Any]) -> tuple[Any, BaseException | None]:
        return self._heard(lambda cb: self.partners.perform(op, body, cb))

    def post(self, posting: dict[str, Any]) -> tuple[Any, BaseException | None]:
        return self._heard(lambda cb: self.partners.post(posting, cb))

    def mode(self, system: str, mode: Mode) -> None:
        endpoint = self.endpoints[system]
        endpoint.down = mode == "down"
        endpoint.degrade(TIMEOUT_S * 100 if mode == "lose" else 1.0)

    def booked(self, movement_id: str) -> int:
        return self.erp.applied([movement_id]).counts[movement_id]

    def released(self, order_id: str) -> bool:
        return self.wms.released(order_id)

    def invoices(self) -> int:
        return len(self.erp.store.state(INVOICES))

    def credit_memos(self) -> int:
        return len(self.erp.store.state(CREDIT_MEMOS))


class TestSimPartners(PartnerContract):
    @pytest.fixture
    def partners(self, tmp_path: Path) -> Iterator[PartnerHarness]:
        harness = SimHarness(tmp_path)
        yield harness
        harness.close()


def test_every_call_is_counted_against_its_system(tmp_path: Path) -> None:
    h = SimHarness(tmp_path)
    try:
        h.perform("credit_check", {"order_id": "O", "customer_id": "C", "amount": "1"})
        h.mode("wms", "down")
        h.perform("release", {"order_id": "O", "lines": []})
        assert h.partners.api_calls == {"erp": 1, "wms": 1}
    finally:
        h.close()
