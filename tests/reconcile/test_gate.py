"""The repair gate: a repair is ripe only once its break persisted unchanged."""

from __future__ import annotations

import pytest

from integration_core.models import Movement
from integration_core.reconcile import Reconciler, ReconcileResult, RepairGate
from integration_core.reconcile.table import RowKey
from tests.reconcile.test_reconciler import A, B, mv, tables


def run(erp: dict[RowKey, int], wms: dict[RowKey, int], now: float,
        in_flight: list[Movement] | None = None) -> ReconcileResult:
    e, w = tables(erp, wms)
    return Reconciler().run(e, w, now, in_flight=in_flight or [])


def test_a_break_is_repaired_only_after_it_persisted_unchanged() -> None:
    gate = RepairGate(after_s=600.0)
    assert gate.ripe(run({A: 5}, {A: 8}, 0.0), 0.0) == []  # new: wait
    assert gate.ripe(run({A: 5}, {A: 8}, 300.0), 300.0) == []  # not long enough yet
    (repair,) = gate.ripe(run({A: 5}, {A: 8}, 600.0), 600.0)
    assert repair.break_key == "A@L1"


def test_a_changed_residual_starts_over_and_a_closed_break_is_forgotten() -> None:
    gate = RepairGate(after_s=600.0)
    gate.ripe(run({A: 5, B: 1}, {A: 8, B: 3}, 0.0), 0.0)
    # A's residual moved (another movement landed): its clock starts again; B unchanged.
    ripe = gate.ripe(run({A: 5, B: 1}, {A: 9, B: 3}, 600.0), 600.0)
    assert [r.break_key for r in ripe] == ["B@L1"]
    assert gate.stable == {"A@L1": (4, 600.0), "B@L1": (2, 0.0)}
    gate.ripe(run({A: 9, B: 1}, {A: 9, B: 3}, 700.0), 700.0)  # A closed by itself
    assert set(gate.stable) == {"B@L1"}


def test_breaks_explained_by_movements_in_flight_are_never_ripe() -> None:
    gate = RepairGate(after_s=0.0)
    for now in (0.0, 1000.0):
        assert gate.ripe(run({A: 5}, {A: 8}, now, [mv("A", 3)]), now) == []
    assert gate.stable == {}


def test_a_negative_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="after_s"):
        RepairGate(after_s=-1.0)
