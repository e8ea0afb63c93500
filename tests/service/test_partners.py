"""How the HTTP adapter of the partner port classifies what goes wrong on the wire."""

from __future__ import annotations

import httpx
import pytest

from integration_core.errors import TransientError
from integration_core.service.partners import Partners

pytestmark = pytest.mark.anyio


class _Breaks(httpx.AsyncBaseTransport):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.exc


@pytest.mark.parametrize("exc", [
    httpx.ConnectError("refused"), ConnectionResetError(104, "reset by peer"),
    # httpcore, when the fault proxy resets a connection right after accepting it:
    AttributeError("'NoneType' object has no attribute 'getpeername'"),
])
async def test_a_broken_connection_is_transient(exc: BaseException) -> None:
    p = Partners("http://erp", "http://wms", "k" * 20, transport=_Breaks(exc))
    try:
        with pytest.raises(TransientError, match="erp"):
            await p.stock(None, [])
    finally:
        await p.close()


async def test_a_bug_is_not_mistaken_for_a_network_fault() -> None:
    p = Partners("http://erp", "http://wms", "k" * 20,
                 transport=_Breaks(AttributeError("'Stock' object has no attribute 'rows2'")))
    try:
        with pytest.raises(AttributeError):
            await p.stock(None, [])
    finally:
        await p.close()
