"""Small builders shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from integration_core.envelope import Envelope

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def env(
    i: int | str,
    key: str = "k",
    type: str = "test.event",
    payload: dict[str, Any] | None = None,
    schema_version: int = 1,
) -> Envelope:
    return Envelope(
        message_id=f"m{i}",
        type=type,
        source="wms",
        occurred_at=T0,
        correlation_id=f"c{i}",
        key=key,
        schema_version=schema_version,
        payload=payload if payload is not None else {"i": i},
    )
