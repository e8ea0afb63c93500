"""When a proposed repair may be carried out: the break behind it must have persisted.

A reconciliation run sees what the integration can see. Movements the core has not heard of
yet (a 3PL that posts every 30 minutes, an outbox resend after an outage) look exactly like lost
ones, and on a busy row a break can be present at every run with different movements behind
it. So a repair is ripe only when its break's residual stayed the same for `after_s`: an
unchanged residual is a difference no movement in transit will close. Pure logic, shared by
every driver: the twin's reconciler applies ripe repairs to its systems, the engine's posts
the ERP's adjustments when the service sets `repair_after_s` (and reports them otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from integration_core.reconcile.inventory import ReconcileResult
from integration_core.reconcile.records import Repair


@dataclass
class RepairGate:
    after_s: float
    """How long a break's residual must stay unchanged before its repair is ripe."""
    stable: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Break key -> (residual, since when unchanged), for the unexplained breaks of the
    last run."""

    def __post_init__(self) -> None:
        if self.after_s < 0:
            raise ValueError(f"after_s must be >= 0, not {self.after_s}")

    def ripe(self, result: ReconcileResult, now: float) -> list[Repair]:
        """The run's repairs whose break persisted unchanged for `after_s`; remembers this
        run's breaks for the next one (a break gone or changed starts over)."""
        stable: dict[str, tuple[int, float]] = {}
        for b in result.breaks:
            if not b.explained:
                before = self.stable.get(b.key)
                stable[b.key] = before if before and before[0] == b.residual else (b.residual, now)
        self.stable = stable
        ready = {k for k, (_, since) in stable.items() if now - since >= self.after_s}
        return [r for r in result.repairs if r.break_key in ready]
