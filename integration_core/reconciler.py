"""Level-triggered ERP <-> WMS reconciliation: the public entry of `integration_core.reconcile`.

    keys = Keyspace()
    erp = BalanceTable.from_balances(erp_balances, keys)
    wms = BalanceTable.from_balances(wms_balances, keys)
    result = Reconciler(catalog).run(erp, wms, now, in_flight=..., log=..., applied_by_erp=...)
    result.breaks, result.repairs, result.audit, result.divergence

For a million rows without a million objects: `diff_arrays(erp, wms, deltas)` and its `Diff`.
"""

# The names live in the `reconcile` package; this module is the entry the docs name.
from integration_core import reconcile as _reconcile
from integration_core.reconcile import *  # noqa: F403

__all__ = list(_reconcile.__all__)
