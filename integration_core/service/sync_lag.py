"""The live service's inventory-sync lag: a movement's occurred_at to the ERP's acknowledgement
of its posting, as the twin's `inventory_sync` flow measures it (so a prediction can be checked
against the live system).

Kept as counts over log-spaced buckets (10 per decade, 1 ms to 1 day): constant memory however
many millions of movements, one vectorised update per ERP call, and percentiles within the
bucket's 12% width (interpolated inside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EDGES = np.logspace(-3, np.log10(86400.0), 10 * 8 + 1)
"""Bucket edges in seconds; below the first and above the last have a bucket each."""


class SyncLag:
    def __init__(self) -> None:
        self.counts = np.zeros(len(EDGES) + 1, dtype=np.int64)

    def observe(self, lags_s: Sequence[float]) -> None:
        if lags_s:
            np.add.at(self.counts, np.searchsorted(EDGES, np.asarray(lags_s, dtype=float)), 1)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float | None:
        """The q-th percentile, interpolated inside its bucket (None before any sample)."""
        n = self.n
        if n == 0:
            return None
        rank = q / 100 * n
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, rank))
        lo = 0.0 if i == 0 else float(EDGES[i - 1])
        hi = float(EDGES[min(i, len(EDGES) - 1)])
        before = 0 if i == 0 else int(cum[i - 1])
        inside = int(self.counts[i])
        share = 0.0 if inside == 0 else (rank - before) / inside
        return lo + (hi - lo) * min(1.0, max(0.0, share))

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, **{f"p{q}": (None if (v := self.percentile(q)) is None
                                          else round(v, 4)) for q in (50, 95, 99)}}
