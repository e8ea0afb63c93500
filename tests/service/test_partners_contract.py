"""The partner-port contract, against the HTTP adapter: `Partners` calling the live twins in
process. A lost answer is a response dropped on the way back (the twin did the work)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration_core.errors import InteropError
from integration_core.service.partners import Fault, Partners
from sim.live import create_twins_app
from tests.engine.partner_contract import Mode, PartnerContract, PartnerHarness

KEY = "contract-partner-key-0123456789abcdef"


class _LosingTransport(httpx.AsyncBaseTransport):
    """Forwards every request; drops the response of a system set to lose answers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.losing: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.split("/")[1] in self.losing:
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost on the way back", request=request)
        return response


class HttpHarness(PartnerHarness):
    def __init__(self, db: Path) -> None:
        self.app = create_twins_app(db, KEY)
        self.transport = _LosingTransport(httpx.ASGITransport(app=self.app))
        self.partners = Partners("http://twins/erp", "http://twins/wms", KEY,
                                 transport=self.transport)
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.run_until_complete(self.partners.close())
        self.loop.close()
        self.app.state.close()

    def _run(self, coro: Any) -> tuple[Any, BaseException | None]:
        try:
            return self.loop.run_until_complete(coro), None
        except InteropError as exc:
            return None, exc

    def perform(self, op: str, body: dict[str, Any]) -> tuple[Any, BaseException | None]:
        return self._run(self.partners.perform(op, body))

    def post(self, posting: dict[str, Any]) -> tuple[Any, BaseException | None]:
        answer, error = self._run(self.partners.post_movements([posting]))
        return (None if answer is None else answer[0]), error

    def mode(self, system: str, mode: Mode) -> None:
        self.transport.losing.discard(system)
        fault = Fault(mode="down" if mode == "down" else "up")
        self.loop.run_until_complete(self.partners.set_fault(system, fault))  # type: ignore[arg-type]
        if mode == "lose":
            self.transport.losing.add(system)

    def booked(self, movement_id: str) -> int:
        return int(self.app.state.erp.applied([movement_id]).counts[movement_id])

    def released(self, order_id: str) -> bool:
        return bool(self.app.state.wms.released(order_id))

    def invoices(self) -> int:
        return len(self.app.state.erp.store.state("erp_invoices"))

    def credit_memos(self) -> int:
        return len(self.app.state.erp.store.state("erp_credit_memos"))


class TestHttpPartners(PartnerContract):
    @pytest.fixture
    def partners(self, tmp_path: Path) -> Iterator[PartnerHarness]:
        harness = HttpHarness(tmp_path / "twins.db")
        yield harness
        harness.close()
