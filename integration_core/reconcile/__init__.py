"""ERP <-> WMS reconciliation: the vectorized inventory diff, breaks, repairs, order breaks.

Import from here: `integration_core.reconcile` is the one entry."""

from integration_core.reconcile.diff import Diff, Divergence, diff_arrays
from integration_core.reconcile.gate import RepairGate
from integration_core.reconcile.inventory import (
    LoggedMovement,
    Reconciler,
    ReconcileResult,
    decode_movements,
)
from integration_core.reconcile.orders import (
    OrderBreak,
    OrderBreakKind,
    OrderView,
    order_breaks,
)
from integration_core.reconcile.records import (
    AdjustmentRepair,
    AuditRecord,
    Break,
    BreakKind,
    Repair,
    ReplayRepair,
    Severity,
    SeverityThresholds,
    break_key,
)
from integration_core.reconcile.table import BalanceTable, Deltas, Keyspace, Vocabulary

__all__ = [
    "AdjustmentRepair",
    "AuditRecord",
    "BalanceTable",
    "Break",
    "BreakKind",
    "Deltas",
    "Diff",
    "Divergence",
    "Keyspace",
    "LoggedMovement",
    "OrderBreak",
    "OrderBreakKind",
    "OrderView",
    "ReconcileResult",
    "Reconciler",
    "Repair",
    "RepairGate",
    "ReplayRepair",
    "Severity",
    "SeverityThresholds",
    "Vocabulary",
    "break_key",
    "decode_movements",
    "diff_arrays",
    "order_breaks",
]
