"""Ground truth of every inventory movement, for measurement only.

The integration never reads this: it is what an all-seeing observer knows (which movements
occurred, which the ERP applied and how often, which were given up), so divergence can be
split into in-flight and unexplained, and the checker can count lost and duplicated.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from integration_core.checker import CheckResult, check_counts
from sim.columns import Column

_NOT_SENT = float("inf")
"""`ack_at` of a movement whose acknowledgement has not been sent."""


class GroundTruth:
    def __init__(self, n_rows: int) -> None:
        self.row = Column(np.int32)
        self.delta = Column(np.int32)
        self.occurred_at = Column(np.float64)
        self.applied = Column(np.uint8)
        """Times the ERP applied the movement (saturates at 255)."""
        self.acknowledged = Column(np.bool_)
        """The producer got a positive answer (published to the bus, or a direct call OK)."""
        self.ack_at = Column(np.float64, fill=np.inf)
        """When the core's acknowledgement reaches the producer (set when it is sent: an
        acknowledgement needs no event of its own; see `acked`)."""
        self.abandoned = Column(np.bool_)
        """Nobody will deliver it any more (a direct caller gave up, a crash lost it)."""
        self.outstanding = 0
        """Movements neither applied nor abandoned yet (row sums in `pending` can cancel)."""
        self.pending = np.zeros(n_rows, dtype=np.int64)
        """Per row: sum of deltas that occurred and are still on their way to the ERP."""
        self._pending = self.pending.data
        """The same cells for scalar updates (a numpy scalar += costs twice as much)."""

    def __len__(self) -> int:
        return len(self.row)

    def occur(self, row: int, delta: int, now: float) -> int:
        idx = len(self.row)
        self.row.append(row)
        self.delta.append(delta)
        self.occurred_at.append(now)
        self.applied.append(0)
        self.acknowledged.append(False)
        self.ack_at.append(_NOT_SENT)
        self.abandoned.append(False)
        self._pending[row] += delta
        self.outstanding += 1
        return idx

    def applied_once_more(self, idx: int) -> bool:
        """Record an application in the ERP; True if it is the first."""
        n = self.applied[idx]
        if n == 0:
            self.applied[idx] = 1
            if not self.abandoned[idx]:
                self._pending[self.row[idx]] -= self.delta[idx]
                self.outstanding -= 1
            return True
        if n < 255:
            self.applied[idx] = n + 1
        return False

    def abandon(self, idx: int) -> None:
        if self.applied[idx] == 0 and not self.abandoned[idx]:
            self.abandoned[idx] = True
            self._pending[self.row[idx]] -= self.delta[idx]
            self.outstanding -= 1

    def acked(self, idx: int, now: float) -> bool:
        return bool(self.acknowledged[idx]) or self.ack_at[idx] <= now

    def settle_acks(self, now: float) -> None:
        """Fold the acknowledgements that have arrived by `now` into `acknowledged`."""
        self.acknowledged.values[:] |= self.ack_at.values <= now

    def check(self) -> CheckResult:
        return check_counts(
            self.acknowledged.values.astype(bool),
            self.applied.values.astype(np.int64),
            prefix="mv-",
        )

    def deltas_by_row(self, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return np.bincount(
            self.row.values[mask], weights=self.delta.values[mask], minlength=len(self.pending)
        ).astype(np.int64)
