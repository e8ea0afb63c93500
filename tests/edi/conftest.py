"""Where the EDI documents are: ours in fixtures/, the public samples in ../shared/edi/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(os.environ.get("INTEROP_EDI_SAMPLES")
               or Path(__file__).resolve().parents[3] / "shared" / "edi")  # fmt: skip


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def samples() -> Path:
    if not (SAMPLES / "SOURCES.md").is_file():
        pytest.skip(
            f"public X12 samples not found at {SAMPLES} (set INTEROP_EDI_SAMPLES or "
            "check out ../shared/edi next to the repository)"
        )
    return SAMPLES
