"""ERP twin state: financial inventory per (sku, warehouse) row, orders and invoices.

No SimPy here: time comes from an injected clock, the API (`sim.systems.endpoint`) gives it
workers and availability. Idempotency: when the ERP honours idempotency keys, a movement it
already applied is acknowledged and ignored; when it does not, it is applied again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.columns import Column
from sim.truth import GroundTruth


class ErpState:
    def __init__(
        self,
        n_rows: int,
        initial_on_hand: int,
        truth: GroundTruth,
        clock: Callable[[], float],
        *,
        honours_idempotency_keys: bool = True,
        batch_posting: bool = False,
    ) -> None:
        self.on_hand = np.full(n_rows, initial_on_hand, dtype=np.int64)
        self._cells = self.on_hand.data
        """The same cells for scalar updates (cheaper than numpy's per item)."""
        self.truth = truth
        self.clock = clock
        self.honours_keys = honours_idempotency_keys
        self.batch_posting = batch_posting
        self.queued: list[int] = []
        """Movements accepted but not yet posted (batch-posting mode)."""
        self.sync_lag = Column(np.float64)
        """Occurred -> first applied in the ERP, seconds: the inventory_sync latency."""
        self.sync_at = Column(np.float64)
        self.sync_idx = Column(np.int64)
        """The movement each sync sample is of (its row gives the warehouse)."""
        self.replays_ignored = 0
        self.adjustments = 0
        self.adjusted_units = 0

    def post_movement(self, idx: int) -> bool:
        """The API operation for one movement; True if accepted."""
        if self.batch_posting:
            self.queued.append(idx)
            return True
        self._apply(idx)
        return True

    def post_batch(self) -> int:
        """Post every queued movement (batch-posting mode); returns how many."""
        queued, self.queued = self.queued, []
        for idx in queued:
            self._apply(idx)
        return len(queued)

    def _apply(self, idx: int) -> None:
        truth = self.truth
        if self.honours_keys and truth.applied[idx]:
            self.replays_ignored += 1
            return
        self._cells[truth.row[idx]] += truth.delta[idx]
        if truth.applied_once_more(idx):
            now = self.clock()
            self.sync_lag.append(now - truth.occurred_at[idx])
            self.sync_at.append(now)
            self.sync_idx.append(idx)

    def adjust(self, row: int, delta: int) -> None:
        """A reconciliation adjustment posted to the ERP."""
        self.on_hand[row] += delta
        self.adjustments += 1
        self.adjusted_units += abs(delta)

    def queued_by_row(self) -> np.ndarray:
        """Deltas of accepted-but-unposted movements per row (known to the ERP itself)."""
        if not self.queued:
            return np.zeros(len(self.on_hand), dtype=np.int64)
        ix = np.array(self.queued, dtype=np.int64)
        return np.bincount(
            self.truth.row.values[ix], weights=self.truth.delta.values[ix],
            minlength=len(self.on_hand),
        ).astype(np.int64)
