from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sigkill: starts `twin serve` as a subprocess on a loopback port and kills "
        "it with SIGKILL (about 5-10 s)")
