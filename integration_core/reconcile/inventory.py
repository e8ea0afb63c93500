"""The inventory reconciler, level-triggered like a Kubernetes controller.

Each run reads both systems' current balances and the movements still in flight, and derives
breaks and repairs from that state alone. Its only memory is when each break was first seen,
which feeds `age_s` and nothing else: a fresh reconciler finds the same breaks and repairs.

Idempotency comes from the inputs, not from memory: a replayed movement is back on the bus and
so in flight, and a proposed adjustment, once passed back in as in flight (`in_flight` when it
goes to the ERP, `in_flight_wms` when the ERP is the record), explains its break.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from integration_core.envelope import MOVEMENT, Envelope, open_payload
from integration_core.models import Catalog, Movement, MovementKind
from integration_core.reconcile.diff import Diff, Divergence, diff_arrays
from integration_core.reconcile.records import (
    AdjustmentRepair,
    AuditRecord,
    Break,
    BreakKind,
    Repair,
    ReplayRepair,
    SeverityThresholds,
    System,
    break_key,
)
from integration_core.reconcile.table import BalanceTable, Deltas, RowKey

_MAX_ID = 128


@dataclass(frozen=True, slots=True)
class LoggedMovement:
    """A movement as it sits in the bus log: the envelope's message id and its payload."""

    message_id: str
    movement: Movement


def decode_movements(
    envelopes: Iterable[Envelope], catalog: Catalog | None = None
) -> list[LoggedMovement]:
    """The inventory movements among `envelopes` (other types are skipped), upcast and validated,
    e.g. from `bus.in_flight("erp")` or `[e.envelope for e in bus.store.log()]`."""
    out = []
    for env in envelopes:
        if env.type == MOVEMENT:
            m = open_payload(env, catalog)
            assert isinstance(m, Movement)  # the registry maps this type to Movement
            out.append(LoggedMovement(env.message_id, m))
    return out


@dataclass(frozen=True)
class ReconcileResult:
    run_id: str
    breaks: tuple[Break, ...]
    repairs: tuple[Repair, ...]
    audit: tuple[AuditRecord, ...]
    diff: Diff
    """The array-level result behind `breaks`."""
    divergence: Divergence


class Reconciler:
    """Compare ERP and WMS stock, explain differences by in-flight movements, propose repairs
    toward `system_of_record` ("wms": physical truth, the default; or "erp")."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        system_of_record: System = "wms",
        thresholds: SeverityThresholds | None = None,
        epoch: datetime = datetime(1970, 1, 1, tzinfo=UTC),
        reason_code: str = "reconciliation",
    ) -> None:
        if system_of_record not in ("wms", "erp"):
            raise ValueError(f"system_of_record must be 'wms' or 'erp', not {system_of_record!r}")
        self.catalog = catalog if catalog is not None else Catalog()
        self.system_of_record: System = system_of_record
        self.thresholds = thresholds if thresholds is not None else SeverityThresholds()
        self.epoch = epoch
        """Time 0 of `now`, for the adjustments' `occurred_at`."""
        self.reason_code = reason_code
        self.first_seen: dict[str, float] = {}
        """Break key -> `now` of the first run that saw it; the reconciler's only state."""

    def run(
        self,
        erp: BalanceTable,
        wms: BalanceTable,
        now: float,
        *,
        in_flight: Iterable[Movement] = (),
        in_flight_wms: Iterable[Movement] = (),
        log: Iterable[LoggedMovement] = (),
        applied_by_erp: Container[str] | Callable[[str], bool] = frozenset(),
        run_id: str | None = None,
    ) -> ReconcileResult:
        """One reconciliation pass.

        in_flight: movements on their way to the ERP (applied by the WMS, not yet by the ERP).
        in_flight_wms: adjustments on their way to the WMS (repairs when the ERP is the record).
        log: movements in the bus log, candidates for replay; leave out dead letters, which
            need a fix before a replay can help.
        applied_by_erp: message ids the ERP consumer has processed (a set, or a predicate such
            as `lambda mid: store.processed("erp", mid)`).
        """
        run_id = run_id if run_id is not None else f"{now:.3f}"
        to_erp, to_wms = list(in_flight), list(in_flight_wms)
        diff = diff_arrays(erp, wms, Deltas.from_movements(erp.keys, to_erp, to_wms))
        breaks = self._breaks(diff, now)
        self.first_seen = {b.key: b.first_seen for b in breaks}
        flying = {m.movement_id for m in to_erp} | {m.movement_id for m in to_wms}
        is_applied = applied_by_erp if callable(applied_by_erp) else applied_by_erp.__contains__
        open_breaks = [b for b in breaks if not b.explained]
        missing = _unapplied(log, {(b.sku, b.location, b.lot) for b in open_breaks}, flying,
                             is_applied)
        repairs: list[Repair] = []
        audit: list[AuditRecord] = []
        for b in open_breaks:
            self._repair(b, missing.get((b.sku, b.location, b.lot), []), now, run_id,
                         repairs, audit)
        return ReconcileResult(run_id, tuple(breaks), tuple(repairs), tuple(audit), diff,
                               diff.divergence())

    # -- breaks ------------------------------------------------------------------------------

    def _unit_value(self, sku: str, cache: dict[str, Decimal]) -> Decimal:
        value = cache.get(sku)
        if value is None:
            item = self.catalog.items.get(sku)
            value = cache[sku] = item.unit_value if item is not None else Decimal(0)
        return value

    def _breaks(self, diff: Diff, now: float) -> list[Break]:
        ks = diff.keys
        values: dict[str, Decimal] = {}
        out = []
        for sku, loc, lot, erp_qty, wms_qty, flight, e_i, w_i in zip(
            ks.skus.decode(diff.sku), ks.locations.decode(diff.location),
            ks.lots.decode(diff.lot), diff.erp_qty.tolist(), diff.wms_qty.tolist(),
            diff.in_flight.tolist(), diff.erp_index.tolist(), diff.wms_index.tolist(),
            strict=True,
        ):
            kind = (BreakKind.MISSING_IN_ERP if e_i < 0 else
                    BreakKind.MISSING_IN_WMS if w_i < 0 else BreakKind.QUANTITY_MISMATCH)
            delta = wms_qty - erp_qty
            residual = delta - flight
            value = abs(residual) * self._unit_value(sku, values)
            first = self.first_seen.get(break_key(sku, loc, lot), now)
            out.append(Break(
                kind=kind, sku=sku, location=loc, lot=lot, erp_qty=erp_qty, wms_qty=wms_qty,
                delta=delta, in_flight_units=flight, residual=residual, explained=residual == 0,
                value=value, severity=self.thresholds.classify(residual, value),
                first_seen=first, age_s=now - first,
            ))
        return out

    # -- repairs -----------------------------------------------------------------------------

    def _repair(
        self,
        b: Break,
        missing: Sequence[LoggedMovement],
        now: float,
        run_id: str,
        repairs: list[Repair],
        audit: list[AuditRecord],
    ) -> None:
        sor = self.system_of_record
        state = (f"{b.kind.value}: ERP {b.erp_qty}, WMS {b.wms_qty}, "
                 f"in flight {b.in_flight_units}, residual {b.residual}")
        rest = b.residual
        if missing:
            ids = tuple(lm.message_id for lm in missing)
            units = sum(lm.movement.delta for lm in missing)
            rest -= units
            exact = "exactly explain" if rest == 0 else "do not fully explain"
            repairs.append(ReplayRepair(b.key, ids, units))
            audit.append(self._audit(
                b, now, run_id, "replay", "erp", units, ",".join(ids),
                f"{state}; {len(ids)} logged movement(s) the ERP never applied {exact} it",
            ))
        if rest == 0:
            return
        target: System = "erp" if sor == "wms" else "wms"
        units = rest if target == "erp" else -rest
        movement = self._adjustment(b, units, now, run_id)
        repairs.append(AdjustmentRepair(b.key, target, movement))
        audit.append(self._audit(
            b, now, run_id, "adjust", target, units, movement.movement_id,
            f"{state}; adjust {target} by {units:+d} toward the system of record ({sor})",
        ))

    def _adjustment(self, b: Break, units: int, now: float, run_id: str) -> Movement:
        movement_id = f"recon:{b.key}:{run_id}"
        if len(movement_id) > _MAX_ID:  # keep it deterministic, within the id length limit
            movement_id = "recon:" + hashlib.blake2b(movement_id.encode(), digest_size=20
                                                     ).hexdigest()
        return Movement(
            movement_id=movement_id,
            kind=MovementKind.ADJUSTMENT,
            sku=b.sku,
            location=b.location,
            lot=b.lot,
            quantity=Decimal(units),
            quantity_base=units,
            reason_code=self.reason_code,
            occurred_at=self.epoch + timedelta(seconds=now),
            references=(b.key,),
        )

    def _audit(
        self, b: Break, now: float, run_id: str, action: Literal["replay", "adjust"],
        target: System, units: int, reference: str, reason: str,
    ) -> AuditRecord:
        return AuditRecord(
            at=now, run_id=run_id, break_key=b.key, action=action, target=target, units=units,
            reference=reference, reason=reason, erp_qty=b.erp_qty, wms_qty=b.wms_qty,
            in_flight_units=b.in_flight_units, system_of_record=self.system_of_record,
        )


def _unapplied(
    log: Iterable[LoggedMovement],
    rows: set[RowKey],
    flying: set[str],
    is_applied: Callable[[str], bool],
) -> dict[RowKey, list[LoggedMovement]]:
    """Logged movements on these rows that the ERP never applied and that are not in flight."""
    out: dict[RowKey, list[LoggedMovement]] = {}
    seen: set[str] = set()
    if not rows:
        return out
    for lm in log:
        m = lm.movement
        k = (m.sku, m.location, m.lot)
        if (k in rows and m.movement_id not in flying and m.movement_id not in seen
                and not is_applied(lm.message_id)):
            seen.add(m.movement_id)
            out.setdefault(k, []).append(lm)
    return out
