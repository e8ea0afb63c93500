"""The live service's inventory-sync lag (occurred -> booked in the ERP), the figure the twin's
prediction is checked against."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from integration_core.service.sync_lag import SyncLag
from tests.service.helpers import make_settings, movement, running


def test_percentiles_from_the_buckets_are_within_their_width() -> None:
    lags = np.random.default_rng(3).lognormal(np.log(2.0), 1.0, 50_000)
    s = SyncLag()
    for chunk in np.array_split(lags, 100):  # one update per ERP call
        s.observe(chunk.tolist())
    assert s.n == len(lags)
    for q in (50, 95, 99):
        got = s.percentile(q)
        assert got == pytest.approx(float(np.percentile(lags, q)), rel=0.13), q
    assert SyncLag().percentile(95) is None and SyncLag().as_dict()["p95"] is None


@pytest.mark.anyio
async def test_status_reports_the_lag_of_what_the_erp_booked(tmp_path: Path) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with running(make_settings(tmp_path / "t.db")) as api:
        before = time.time()
        for i in range(3):
            assert (await api.post("/v1/movements", movement(f"m{i}", occurred_at=now))
                    ).status_code == 202
        await api.drain()
        lag = (await api.status())["inventory_sync_lag_s"]
    assert lag["n"] == 3
    # occurred_at is to the second: the lag is at most that plus the time to book
    assert 0 <= lag["p50"] <= lag["p95"] <= lag["p99"] <= time.time() - before + 1.5
