"""Where the EDI documents are: ours in fixtures/, the public samples in samples/ (copied
unchanged from ../shared/edi, each with its source and licence in samples/SOURCES.md), so they
run wherever the repository is checked out."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).parent / "samples"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def samples() -> Path:
    return SAMPLES
