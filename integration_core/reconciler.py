"""Level-triggered ERP <-> WMS reconciliation: the public entry of `integration_core.reconcile`.

    keys = Keyspace()
    erp = BalanceTable.from_balances(erp_balances, keys)
    wms = BalanceTable.from_balances(wms_balances, keys)
    result = Reconciler(catalog).run(erp, wms, now, in_flight=..., log=..., applied_by_erp=...)
    result.breaks, result.repairs, result.audit, result.divergence

For a million rows without a million objects: `diff_arrays(erp, wms, deltas)` and its `Diff`.
"""

from integration_core.reconcile import (
    AdjustmentRepair,
    AuditRecord,
    BalanceTable,
    Break,
    BreakKind,
    Deltas,
    Diff,
    Divergence,
    Keyspace,
    LoggedMovement,
    OrderBreak,
    OrderBreakKind,
    OrderView,
    Reconciler,
    ReconcileResult,
    Repair,
    ReplayRepair,
    Severity,
    SeverityThresholds,
    Vocabulary,
    break_key,
    decode_movements,
    diff_arrays,
    order_breaks,
)

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
    "ReplayRepair",
    "Severity",
    "SeverityThresholds",
    "Vocabulary",
    "break_key",
    "decode_movements",
    "diff_arrays",
    "order_breaks",
]
