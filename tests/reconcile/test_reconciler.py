"""The reconciler: break kinds, in-flight explanation, replay vs adjustment, audit, severity,
age, order-status breaks, idempotency, and the vectorized diff against a plain reference."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import count
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration_core.bus import Bus, MemoryStore, Tx
from integration_core.envelope import Envelope, wrap
from integration_core.models import Catalog, InventoryBalance, Item, Movement, MovementKind
from integration_core.reconcile import (
    AdjustmentRepair,
    BalanceTable,
    BreakKind,
    Deltas,
    Keyspace,
    LoggedMovement,
    OrderBreakKind,
    OrderView,
    Reconciler,
    ReconcileResult,
    ReplayRepair,
    Severity,
    SeverityThresholds,
    decode_movements,
    diff_arrays,
    order_breaks,
)
from integration_core.reconcile import diff as diff_module
from integration_core.reconcile.diff import combined_keys, sort_keys
from integration_core.reconcile.table import RowKey

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_ids = count()


def mv(sku: str, delta: int, location: str = "L1", lot: str | None = None,
       movement_id: str | None = None) -> Movement:
    return Movement(
        movement_id=movement_id or f"mv-{next(_ids)}", kind=MovementKind.ADJUSTMENT, sku=sku,
        location=location, lot=lot, quantity=Decimal(delta), occurred_at=T0,
    )


def logged(m: Movement) -> LoggedMovement:
    return LoggedMovement(f"inventory.movement:{m.movement_id}", m)


def tables(erp: dict[RowKey, int], wms: dict[RowKey, int]) -> tuple[BalanceTable, BalanceTable]:
    keys = Keyspace()
    return BalanceTable.from_dict(erp, keys), BalanceTable.from_dict(wms, keys)


A, B, C = ("A", "L1", None), ("B", "L1", None), ("C", "L2", "lot7")


# --- break kinds and in-flight explanation ------------------------------------------------------


def test_every_break_kind_and_equal_rows_are_not_breaks() -> None:
    erp, wms = tables({A: 5, B: 3, ("D", "L1", None): 4, ("Z", "L1", None): 0},
                      {A: 8, C: 2, ("D", "L1", None): 4})
    r = Reconciler().run(erp, wms, now=0.0)
    got = {b.key: (b.kind, b.erp_qty, b.wms_qty, b.delta) for b in r.breaks}
    assert got == {
        "A@L1": (BreakKind.QUANTITY_MISMATCH, 5, 8, 3),
        "B@L1": (BreakKind.MISSING_IN_WMS, 3, 0, -3),
        "C@L2:lot7": (BreakKind.MISSING_IN_ERP, 0, 2, 2),
    }  # D agrees; Z is 0 in the ERP and absent in the WMS: no stock differs
    assert r.divergence.skus_out_of_sync == 3 and r.divergence.divergence_units == 8


def test_break_fully_explained_by_in_flight_movements_gets_no_repair() -> None:
    erp, wms = tables({A: 5}, {A: 8})
    r = Reconciler().run(erp, wms, 0.0, in_flight=[mv("A", 2), mv("A", 1)])
    (b,) = r.breaks
    assert (b.in_flight_units, b.residual, b.explained, b.severity) == (3, 0, True, Severity.LOW)
    assert r.repairs == () and r.audit == ()
    assert (r.divergence.in_flight_units, r.divergence.unexplained_units) == (3, 0)


def test_partial_explanation_repairs_only_the_residual() -> None:
    erp, wms = tables({A: 5}, {A: 12})
    r = Reconciler().run(erp, wms, 0.0, in_flight=[mv("A", 3)])
    (b,) = r.breaks
    assert (b.delta, b.in_flight_units, b.residual, b.explained) == (7, 3, 4, False)
    (rep,) = r.repairs
    assert isinstance(rep, AdjustmentRepair) and rep.movement.delta == 4
    assert (r.divergence.in_flight_units, r.divergence.unexplained_units) == (3, 4)


def test_in_flight_on_other_rows_or_lots_does_not_explain() -> None:
    erp, wms = tables({A: 5, C: 1}, {A: 8, C: 1})
    r = Reconciler().run(erp, wms, 0.0, in_flight=[mv("A", 3, lot="other"), mv("C", 1, "L2")])
    (b,) = r.breaks
    assert b.key == "A@L1" and b.in_flight_units == 0 and not b.explained


def test_in_flight_that_overshoots_is_not_explained() -> None:
    erp, wms = tables({A: 5}, {A: 8})
    r = Reconciler().run(erp, wms, 0.0, in_flight=[mv("A", 5)])
    (b,) = r.breaks
    assert (b.residual, b.explained) == (-2, False)
    assert r.divergence.unexplained_units == 2 and r.divergence.in_flight_units == 1


# --- repairs: replay vs adjustment, audit, system of record -------------------------------------


def test_replays_logged_movements_the_erp_missed_when_they_explain_exactly() -> None:
    erp, wms = tables({A: 5}, {A: 9})
    lost, done = mv("A", 4), mv("A", 7)
    log = [logged(lost), logged(done), logged(mv("B", 4))]
    r = Reconciler().run(erp, wms, 10.0, log=log, applied_by_erp={logged(done).message_id})
    (rep,) = r.repairs
    assert rep == ReplayRepair("A@L1", (logged(lost).message_id,), 4)


def test_adjusts_when_no_logged_movement_is_missing() -> None:
    erp, wms = tables({A: 5}, {A: 9})
    applied = mv("A", 4)
    in_flight = mv("A", 1)
    log = [logged(applied), logged(in_flight)]  # one applied, one in flight: not candidates
    r = Reconciler().run(erp, wms, 10.0, in_flight=[in_flight], log=log,
                         applied_by_erp=lambda mid: mid == logged(applied).message_id,
                         run_id="r1")
    (rep,) = r.repairs
    assert isinstance(rep, AdjustmentRepair)
    m = rep.movement
    assert (rep.target, m.kind, m.delta) == ("erp", "adjustment", 3)
    assert m.reason_code == "reconciliation"
    assert (m.movement_id, m.sku, m.location, m.lot) == ("recon:A@L1:r1", "A", "L1", None)
    assert m.occurred_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=10)


def test_replays_then_adjusts_the_rest_when_the_log_explains_only_part() -> None:
    erp, wms = tables({A: 5}, {A: 9})
    lost = mv("A", 6)
    r = Reconciler().run(erp, wms, 10.0, log=[logged(lost)], run_id="r2")
    replay, adjust = r.repairs
    assert isinstance(replay, ReplayRepair) and replay.units == 6
    assert isinstance(adjust, AdjustmentRepair) and adjust.movement.delta == -2
    assert [a.action for a in r.audit] == ["replay", "adjust"]
    assert "do not fully explain" in r.audit[0].reason


def test_audit_trail_records_what_why_when_and_which_break() -> None:
    erp, wms = tables({A: 5, B: 2}, {A: 9})
    lost = mv("A", 4)
    r = Reconciler().run(erp, wms, 42.0, log=[logged(lost)], run_id="run-9")
    by_key = {a.break_key: a for a in r.audit}
    replay, adjust = by_key["A@L1"], by_key["B@L1"]
    assert (replay.at, replay.run_id, replay.action, replay.target, replay.units) == (
        42.0, "run-9", "replay", "erp", 4)
    assert replay.reference == logged(lost).message_id
    assert (replay.erp_qty, replay.wms_qty, replay.in_flight_units) == (5, 9, 0)
    assert "exactly explain" in replay.reason and "quantity_mismatch" in replay.reason
    assert (adjust.action, adjust.units, adjust.reference) == ("adjust", -2, "recon:B@L1:run-9")
    assert "missing_in_wms" in adjust.reason and "system of record (wms)" in adjust.reason
    assert all(a.system_of_record == "wms" for a in r.audit)


def test_erp_as_system_of_record_adjusts_the_wms() -> None:
    erp, wms = tables({A: 5}, {A: 9})
    rec = Reconciler(system_of_record="erp")
    (rep,) = rec.run(erp, wms, 0.0).repairs
    assert isinstance(rep, AdjustmentRepair)
    assert (rep.target, rep.movement.delta) == ("wms", -4)
    # Passed back in as on its way to the WMS, it explains the break.
    again = rec.run(erp, wms, 1.0, in_flight_wms=[rep.movement])
    assert again.repairs == () and again.breaks[0].explained
    with pytest.raises(ValueError, match="system_of_record"):
        Reconciler(system_of_record="shop")  # type: ignore[arg-type]


def test_long_keys_get_a_bounded_deterministic_movement_id() -> None:
    key = ("S" * 100, "L" * 100, None)
    erp, wms = tables({key: 1}, {key: 2})
    ids = [Reconciler().run(erp, wms, 0.0, run_id="r").repairs[0] for _ in range(2)]
    assert all(isinstance(i, AdjustmentRepair) for i in ids)
    mids = [i.movement.movement_id for i in ids if isinstance(i, AdjustmentRepair)]
    assert mids[0] == mids[1] and mids[0].startswith("recon:") and len(mids[0]) <= 128


# --- severity and age ---------------------------------------------------------------------------


def test_severity_by_units_and_by_value() -> None:
    catalog = Catalog([Item(sku="A", unit_value=Decimal("60")), Item(sku="B")])
    th = SeverityThresholds(medium_units=5, high_units=50, medium_value=Decimal(100),
                            high_value=Decimal(1000))
    cheap = [("B", "L1", None), ("B", "L2", None), ("B", "L3", None)]
    erp, wms = tables({cheap[0]: 0, cheap[1]: 0, cheap[2]: 0, A: 0, C: 0},
                      {cheap[0]: 4, cheap[1]: 5, cheap[2]: 50, A: 2, C: 17})
    r = Reconciler(catalog, thresholds=th).run(erp, wms, 0.0)
    sev = {b.key: (b.severity, b.value) for b in r.breaks}
    assert sev["B@L1"] == (Severity.LOW, Decimal(0))
    assert sev["B@L2"] == (Severity.MEDIUM, Decimal(0))
    assert sev["B@L3"] == (Severity.HIGH, Decimal(0))
    assert sev["A@L1"] == (Severity.MEDIUM, Decimal(120))  # 2 units, but worth 120
    assert sev["C@L2:lot7"][0] == Severity.MEDIUM  # C is not in the catalog: value 0
    assert th.classify(0, Decimal(10**6)) == Severity.LOW  # nothing unexplained
    assert th.classify(-3, Decimal(1000)) == Severity.HIGH
    with pytest.raises(ValueError):
        SeverityThresholds(medium_units=10, high_units=5)


def test_age_counts_from_first_seen_and_memory_does_not_change_the_diff() -> None:
    erp, wms = tables({A: 5, B: 1}, {A: 9, B: 1})
    rec = Reconciler()
    assert rec.run(erp, wms, 100.0).breaks[0].age_s == 0.0
    later = rec.run(erp, wms, 160.0)
    assert (later.breaks[0].first_seen, later.breaks[0].age_s) == (100.0, 60.0)
    fresh = Reconciler().run(erp, wms, 160.0)
    strip = [(b.key, b.delta, b.residual, b.severity) for b in fresh.breaks]
    assert strip == [(b.key, b.delta, b.residual, b.severity) for b in later.breaks]
    assert fresh.repairs == Reconciler().run(erp, wms, 160.0).repairs
    # Once repaired the break is forgotten; a new one later starts a new age.
    erp2, wms2 = tables({A: 9}, {A: 9})
    assert rec.run(erp2, wms2, 200.0).breaks == () and rec.first_seen == {}
    assert rec.run(erp, wms, 300.0).breaks[0].first_seen == 300.0


# --- idempotency and the bus --------------------------------------------------------------------


def test_second_run_with_repairs_passed_back_proposes_nothing() -> None:
    erp, wms = tables({A: 5, B: 3}, {A: 9, C: 1})
    lost = mv("C", 1, "L2", "lot7")
    rec = Reconciler()
    first = rec.run(erp, wms, 0.0, log=[logged(lost)])
    assert len(first.repairs) == 3
    pending = [r.movement for r in first.repairs if isinstance(r, AdjustmentRepair)]
    assert ReplayRepair("C@L2:lot7", (logged(lost).message_id,), 1) in first.repairs
    replayed = [lost]  # back on the bus for the ERP, so in flight
    second = rec.run(erp, wms, 5.0, in_flight=pending + replayed, log=[logged(lost)])
    assert second.repairs == () and all(b.explained for b in second.breaks)


def test_end_to_end_with_the_bus_replay_then_drain() -> None:
    bus = Bus(MemoryStore())
    wms_stock: dict[RowKey, int] = defaultdict(int)
    erp_stock: dict[RowKey, int] = defaultdict(int)

    def ship(m: Movement, now: float) -> None:
        wms_stock[(m.sku, m.location, m.lot)] += m.delta
        bus.publish(wrap(m, source="wms", occurred_at=T0), now)

    def apply(env: Envelope, tx: Tx) -> None:
        (lm,) = decode_movements([env])
        erp_stock[(lm.movement.sku, lm.movement.location, lm.movement.lot)] += lm.movement.delta

    ship(mv("A", 10, movement_id="early"), 0.0)  # published before the ERP subscribed: lost
    bus.subscribe("erp", ["inventory.movement"])
    ship(mv("A", 5, movement_id="seen"), 1.0)
    bus.drain({"erp": apply}, 1.0)
    ship(mv("B", 2, movement_id="flying"), 2.0)  # published, not yet processed

    def reconcile(now: float) -> tuple[BalanceTable, BalanceTable, list[Movement]]:
        keys = Keyspace()
        in_flight = [lm.movement for lm in decode_movements(bus.in_flight("erp"))]
        return (BalanceTable.from_dict(erp_stock, keys), BalanceTable.from_dict(wms_stock, keys),
                in_flight)

    rec = Reconciler()

    def run(now: float) -> ReconcileResult:
        erp, wms, flying = reconcile(now)
        return rec.run(erp, wms, now, in_flight=flying,
                       log=decode_movements(e.envelope for e in bus.store.log()),
                       applied_by_erp=partial(bus.store.processed, "erp"))

    first = run(3.0)
    assert {b.key: b.explained for b in first.breaks} == {"A@L1": False, "B@L1": True}
    (rep,) = first.repairs
    assert rep == ReplayRepair("A@L1", ("inventory.movement:early",), 10)
    assert bus.replay("erp", 3.0, only=rep.message_ids) == 1
    second = run(4.0)
    assert second.repairs == () and all(b.explained for b in second.breaks)
    bus.drain({"erp": apply}, 5.0)
    assert run(6.0).breaks == () and erp_stock == wms_stock


def test_decode_movements_skips_other_message_types() -> None:
    m = mv("A", 1)
    other = Envelope(message_id="x", type="order.placed", source="shop", occurred_at=T0,
                     correlation_id="o", key="o", payload={})
    assert decode_movements([other, wrap(m, source="wms", occurred_at=T0)]) == [
        LoggedMovement(f"inventory.movement:{m.movement_id}", m)
    ]


# --- property: repairs bring unexplained divergence to zero; second run proposes nothing ---------

KEYS = [(s, loc, lot) for s in "ABC" for loc in ("L1", "L2") for lot in (None, "x")]
qty = st.integers(-5, 30)
moves = st.lists(st.tuples(st.sampled_from(KEYS), st.integers(-9, 9).filter(bool)), max_size=6)


@settings(max_examples=80, deadline=None)
@given(
    erp=st.dictionaries(st.sampled_from(KEYS), qty),
    wms=st.dictionaries(st.sampled_from(KEYS), qty),
    flying=moves, lost=moves, applied=moves,
    sor=st.sampled_from(["wms", "erp"]),
)
def test_repairs_leave_no_unexplained_divergence_and_are_idempotent(
    erp: dict[RowKey, int], wms: dict[RowKey, int], flying: list[tuple[RowKey, int]],
    lost: list[tuple[RowKey, int]], applied: list[tuple[RowKey, int]], sor: str,
) -> None:
    def movements(spec: list[tuple[RowKey, int]], tag: str) -> list[Movement]:
        return [mv(k[0], d, k[1], k[2], f"{tag}{i}") for i, (k, d) in enumerate(spec)]

    in_flight = movements(flying, "f")
    log_lost, log_applied = movements(lost, "l"), movements(applied, "a")
    log = [logged(m) for m in log_lost + log_applied + in_flight]
    done = {logged(m).message_id for m in log_applied}
    by_id = {lm.message_id: lm.movement for lm in log}
    keys = Keyspace()
    rec = Reconciler(system_of_record="wms" if sor == "wms" else "erp")

    def run(e: dict[RowKey, int], w: dict[RowKey, int], in_flight: list[Movement],
            in_flight_wms: list[Movement] | None = None) -> ReconcileResult:
        return rec.run(BalanceTable.from_dict(e, keys), BalanceTable.from_dict(w, keys), 0.0,
                       in_flight=in_flight, in_flight_wms=in_flight_wms or [], log=log,
                       applied_by_erp=done)

    first = run(erp, wms, in_flight=in_flight)
    for b in first.breaks:
        assert b.explained == (b.erp_qty + b.in_flight_units == b.wms_qty)
        assert b.explained or any(r.break_key == b.key for r in first.repairs)

    # Apply the repairs: replayed movements and adjustments land on their systems.
    e2, w2 = defaultdict(int, erp), defaultdict(int, wms)
    to_erp, to_wms = list(in_flight), list[Movement]()
    for r in first.repairs:
        if isinstance(r, ReplayRepair):
            for mid in r.message_ids:
                m = by_id[mid]
                e2[(m.sku, m.location, m.lot)] += m.delta
                to_erp.append(m)
        else:
            m = r.movement
            (e2 if r.target == "erp" else w2)[(m.sku, m.location, m.lot)] += m.delta
            (to_erp if r.target == "erp" else to_wms).append(m)
    after = run(dict(e2), dict(w2), in_flight=in_flight)
    assert after.divergence.unexplained_units == 0
    assert after.repairs == () and all(b.explained for b in after.breaks)

    # Not applied yet but passed back in as in flight: nothing new is proposed.
    again = run(erp, wms, in_flight=to_erp, in_flight_wms=to_wms)
    assert again.repairs == () and again.divergence.unexplained_units == 0


# --- the vectorized diff against a plain reference ----------------------------------------------


def reference(erp: dict[RowKey, int], wms: dict[RowKey, int], flying: list[tuple[RowKey, int]]
              ) -> dict[RowKey, tuple[int, int, int, bool, bool]]:
    net: dict[RowKey, int] = defaultdict(int)
    for k, d in flying:
        net[k] += d
    return {
        k: (erp.get(k, 0), wms.get(k, 0), net[k], k in erp, k in wms)
        for k in erp.keys() | wms.keys() if erp.get(k, 0) != wms.get(k, 0)
    }


def check_against_reference(erp: dict[RowKey, int], wms: dict[RowKey, int],
                            flying: list[tuple[RowKey, int]]) -> None:
    keys = Keyspace()
    e, w = BalanceTable.from_dict(erp, keys), BalanceTable.from_dict(wms, keys)
    net: dict[RowKey, int] = defaultdict(int)
    for k, dlt in flying:
        net[k] += dlt
    d = diff_arrays(e, w, Deltas.from_dict(net, keys))
    got = {
        d.key(i): (int(d.erp_qty[i]), int(d.wms_qty[i]), int(d.in_flight[i]),
                   bool(d.erp_index[i] >= 0), bool(d.wms_index[i] >= 0))
        for i in range(len(d))
    }
    assert got == reference(erp, wms, flying)
    rows = [d.key(i) for i in range(len(d))]
    assert len(rows) == len(set(rows))
    codes = list(zip(d.sku.tolist(), d.location.tolist(), d.lot.tolist(), strict=True))
    assert codes == sorted(codes)  # key order
    for i in range(len(d)):  # indices point at the right input rows
        if d.erp_index[i] >= 0:
            assert e.on_hand[d.erp_index[i]] == d.erp_qty[i] and e.sku[d.erp_index[i]] == d.sku[i]
        if d.wms_index[i] >= 0:
            assert w.on_hand[d.wms_index[i]] == d.wms_qty[i] and w.lot[d.wms_index[i]] == d.lot[i]
    div = d.divergence()
    ref = reference(erp, wms, flying).values()
    assert div.divergence_units == sum(abs(wq - eq) for eq, wq, *_ in ref)
    assert div.unexplained_units == sum(min(abs(wq - eq - f), abs(wq - eq))
                                        for eq, wq, f, *_ in ref)
    assert div.in_flight_units + div.unexplained_units == div.divergence_units


WIDE_KEYS = st.tuples(st.sampled_from([f"S{i}" for i in range(30)]),
                      st.sampled_from(["L1", "L2", "L3"]), st.sampled_from([None, "a", "b"]))
diff_inputs = dict(
    erp=st.dictionaries(WIDE_KEYS, st.integers(-3, 5), max_size=60),
    wms=st.dictionaries(WIDE_KEYS, st.integers(-3, 5), max_size=60),
    flying=st.lists(st.tuples(WIDE_KEYS, st.integers(-4, 4)), max_size=20),
)


@settings(max_examples=150, deadline=None)
@given(**diff_inputs)
def test_vectorized_diff_equals_reference(
    erp: dict[RowKey, int], wms: dict[RowKey, int], flying: list[tuple[RowKey, int]]
) -> None:
    check_against_reference(erp, wms, flying)


@settings(max_examples=60, deadline=None)
@given(**diff_inputs)
def test_fallback_paths_equal_reference(
    erp: dict[RowKey, int], wms: dict[RowKey, int], flying: list[tuple[RowKey, int]]
) -> None:
    """Re-ranked keys (huge vocabularies) and plain argsort (keys too wide to pack)."""
    with (mock.patch.object(diff_module, "combined_keys", partial(combined_keys, limit=1)),
          mock.patch.object(diff_module, "sort_keys", partial(sort_keys, word_bits=0))):
        check_against_reference(erp, wms, flying)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4), st.integers(0, 3)),
                max_size=40), st.sampled_from([1, 7, 2**62]))
def test_combined_keys_preserve_equality_and_order(
    rows: list[tuple[int, int, int]], limit: int
) -> None:
    keys = Keyspace()
    keys.skus.encode(str(i) for i in range(7))
    keys.locations.encode(str(i) for i in range(5))
    keys.lots.encode(str(i) for i in range(4))
    cols = tuple(np.array([r[i] for r in rows], dtype=np.int64) for i in range(3))
    half = len(rows) // 2
    parts = [(cols[0][:half], cols[1][:half], cols[2][:half]),
             (cols[0][half:], cols[1][half:], cols[2][half:])]
    (k1, k2), bound = combined_keys(keys, parts, limit=limit)
    combined = np.concatenate((k1, k2)).tolist()
    assert all(0 <= k < bound for k in combined)
    for i, ri in enumerate(rows):
        for j, rj in enumerate(rows):
            assert (combined[i] < combined[j]) == (ri < rj)
    for bits in (63, 0):
        order, skeys = sort_keys(np.array(combined, dtype=np.int64), bound, word_bits=bits)
        assert order.tolist() == sorted(range(len(rows)), key=lambda i: (combined[i], i))
        assert skeys.tolist() == sorted(combined)


def test_duplicate_rows_and_mixed_keyspaces_are_rejected() -> None:
    keys = Keyspace()
    s, loc, lot = keys.encode([A, A])
    twice = BalanceTable(keys, s, loc, lot, np.array([1, 2]))
    once = BalanceTable.from_dict({A: 1}, keys)
    with pytest.raises(ValueError, match=r"erp snapshot has row \('A', 'L1', None\) twice"):
        diff_arrays(twice, once)
    with pytest.raises(ValueError, match="wms snapshot"):
        diff_arrays(once, twice)
    with pytest.raises(ValueError, match="share one Keyspace"):
        diff_arrays(once, BalanceTable.from_dict({A: 1}))
    with pytest.raises(ValueError, match="appears twice"):
        BalanceTable.from_balances([InventoryBalance(sku="A", location="L1", on_hand=1)] * 2)
    with pytest.raises(ValueError, match="codes must lie"):
        BalanceTable(keys, np.array([5]), np.array([0]), np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="length"):
        BalanceTable(keys, np.array([0, 0]), np.array([0]), np.array([0]), np.array([1]))


def test_tables_round_trip_and_empty_tables_diff_empty() -> None:
    bal = [InventoryBalance(sku="A", location="L1", on_hand=4),
           InventoryBalance(sku="A", location="L1", lot="x", on_hand=2, allocated=1)]
    t = BalanceTable.from_balances(bal)
    assert t.to_dict() == {A: 4, ("A", "L1", "x"): 2}
    empty = BalanceTable.from_dict({}, t.keys)
    assert len(diff_arrays(empty, empty)) == 0
    assert len(diff_arrays(t, t)) == 0
    d = diff_arrays(empty, t)
    assert d.erp_index.tolist() == [-1, -1] and d.delta.tolist() == [4, 2]


def test_benchmark_runs_and_agrees_on_a_small_input() -> None:
    from loadtests.bench.reconciler import run

    out = run(rows=20_000, repeat=1, seed=3)
    assert out["same_result"] and out["break_counts"]["breaks"] > 0


# --- order-status breaks ------------------------------------------------------------------------


def test_order_status_disagreement_breaks_only_after_the_lag_of_the_leading_status() -> None:
    erp = {"o1": OrderView("released", 50.0), "o2": OrderView("shipped", 0.0),
           "o3": OrderView("released", 10.0)}
    wms = {"o1": OrderView("shipped", 100.0), "o2": OrderView("shipped", 0.0),
           "o3": OrderView("picked", 20.0)}
    lags = {"shipped": 600.0, "picked": 60.0}
    assert [b.order_id for b in order_breaks(erp, wms, {}, 70.0, allowed_lag=lags)] == []
    (o3,) = order_breaks(erp, wms, {}, 81.0, allowed_lag=lags)
    assert (o3.order_id, o3.kind, o3.leading_system, o3.leading_status) == (
        "o3", OrderBreakKind.STATUS_MISMATCH, "wms", "picked")
    assert (o3.since, o3.age_s, o3.allowed_lag_s) == (20.0, 61.0, 60.0)
    late = order_breaks(erp, wms, {}, 701.0, allowed_lag=lags)
    assert [(b.order_id, b.erp_status, b.wms_status, b.shop_status) for b in late] == [
        ("o1", "released", "shipped", None), ("o3", "released", "picked", None)]


def test_order_missing_in_erp_or_wms_and_default_lag() -> None:
    shop = {"s1": OrderView("placed", 0.0), "s2": OrderView("placed", 0.0)}
    erp = {"s2": OrderView("released", 5.0), "e1": OrderView("credit_hold", 0.0)}
    out = order_breaks(erp, {}, shop, 1000.0, default_lag=300.0,
                       allowed_lag={"placed": 120.0}, wms_statuses={"released"})
    assert [(b.order_id, b.kind, b.leading_status, b.allowed_lag_s) for b in out] == [
        ("s1", OrderBreakKind.MISSING, "placed", 120.0),  # never reached the ERP
        ("s2", OrderBreakKind.MISSING, "released", 300.0),  # released, unknown to the WMS
    ]  # e1: an ERP-only order on credit hold; neither the shop nor the WMS must know it
    assert order_breaks(erp, {}, shop, 100.0, allowed_lag={"placed": 120.0}) == []


def test_order_leader_tie_goes_to_the_erp() -> None:
    (b,) = order_breaks({"o": OrderView("a", 0.0)}, {"o": OrderView("b", 0.0)}, {}, 10.0,
                        default_lag=1.0)
    assert (b.leading_system, b.leading_status) == ("erp", "a")
